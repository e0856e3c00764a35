"""The built-in plugin table as the bindings see it: the same rows the
engine and config validation read."""
import retina


def test_plugin_table_names_every_plugin_once():
    names = [p["name"] for p in retina.PLUGINS]
    assert names == ["packetparser", "dropreason", "packetforward", "dns", "tcpretrans", "linuxutil", "infiniband"]


def test_each_origin_is_emitted_by_the_plugin_of_its_name():
    emitted = {o: p["name"] for p in retina.PLUGINS for o in p["emits"]}
    assert emitted == {"packetparser": "packetparser", "dropreason": "dropreason", "dns": "dns",
                       "tcpretrans": "tcpretrans"}
    assert sorted(retina._retina.ENUM_NAMES["origin"].values()) == sorted(emitted)


def test_needs_are_declared():
    needs = {p["name"]: set(p["needs"]) for p in retina.PLUGINS}
    assert needs["packetparser"] == {"features", "interfaces", "ip_cache"}
    assert needs["linuxutil"] == set()


def test_an_unknown_plugin_is_rejected_with_the_table_names():
    try:
        retina.Config(enabled_plugins=["nosuch"])
    except retina.InvalidArgument as e:
        assert "packetparser, dropreason, packetforward, dns, tcpretrans, linuxutil, infiniband" in str(e)
    else:
        raise AssertionError("accepted an unknown plugin")
