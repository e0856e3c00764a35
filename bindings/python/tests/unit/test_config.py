import datetime
import os

import pytest

import retina


def test_defaults_match_retina():
    c = retina.Config()
    assert c.data_aggregation_level == "high"
    assert c.enabled_plugins == ["packetparser", "dropreason", "packetforward", "linuxutil", "dns", "tcpretrans"]
    assert c.metrics_interval == datetime.timedelta(seconds=10)
    assert c.api_server_port == 10093
    assert c.enable_tcx == "auto"
    assert c.host_interfaces == ["auto"]
    assert c.packet_parser_ring_buffer_size == 0  # sized by CPU count
    assert repr(c) == "Config()"


def test_keywords_set_fields_and_validate():
    c = retina.Config(data_aggregation_level="LOW", enabled_plugins=["packetparser"],
                      metrics_interval="1m30s", conntrack_report_interval=5,
                      pod_interface_prefixes=["veth"], host_interfaces=[], log_level="debug")
    assert c.data_aggregation_level == "low"
    assert c.enabled_plugins == ["packetparser"]
    assert c.metrics_interval == datetime.timedelta(seconds=90)
    assert c.conntrack_report_interval == datetime.timedelta(seconds=5)
    assert c.host_interfaces == []
    assert c.log_level == "debug"
    assert "data_aggregation_level='low'" in repr(c)
    c.metrics_interval = datetime.timedelta(milliseconds=250)
    assert c.metrics_interval.total_seconds() == 0.25


def test_validation_errors_are_value_errors_with_every_problem():
    with pytest.raises(ValueError) as e:
        retina.Config(data_sampling_rate=0, metrics_interval=0.01, enabled_plugins=["packetparsr"])
    assert isinstance(e.value, retina.InvalidArgument)
    assert isinstance(e.value, retina.Error)
    assert e.value.kind == "invalid_argument"
    lines = str(e.value).splitlines()
    assert 'enabledPlugin: unknown plugin "packetparsr" (did you mean packetparser?)' in lines
    assert "metricsIntervalDuration: must be at least 100ms, got 10ms" in lines
    assert "dataSamplingRate: must be at least 1 (1 keeps every packet)" in lines


def test_bad_values_name_the_field():
    with pytest.raises(ValueError, match="data_aggregation_level: expected one of low, high, got 'medium'"):
        retina.Config(data_aggregation_level="medium")
    with pytest.raises(ValueError, match="api_server_port: expected an integer from 0 to 65535, got 70000"):
        retina.Config(api_server_port=70000)
    with pytest.raises(ValueError, match="conntrack_max_entries: expected an integer"):
        retina.Config(conntrack_max_entries=-1)
    with pytest.raises(ValueError, match="enable_pod_level: expected True or False"):
        retina.Config(enable_pod_level="yes")
    with pytest.raises(ValueError, match="metrics_interval: "):
        retina.Config(metrics_interval="10 parsecs")
    with pytest.raises(ValueError, match="packetParserRingBufferSize: must be a power of two"):
        retina.Config(packet_parser_ring_buffer_size=3000)


def test_unknown_field_is_a_type_error():
    with pytest.raises(TypeError, match="unknown field 'aggregation'"):
        retina.Config(aggregation="low")


def test_from_yaml_reads_retina_keys():
    c = retina.Config.from_yaml("""
enabledPlugin: [packetparser, dns]
dataAggregationLevel: low
metricsIntervalDuration: 30s
enablePodLevel: true
metricsConfiguration:
  contextOptions:
    - metricName: forward
      sourceLabels: [ip, podname]
      ttl: 1m
""")
    assert c.enabled_plugins == ["packetparser", "dns"]
    assert c.data_aggregation_level == "low"
    assert c.enable_pod_level is True
    assert c.context_options == [{
        "metric_name": "forward", "source_labels": ["ip", "podname"], "destination_labels": [],
        "additional_labels": [], "ttl": datetime.timedelta(minutes=1)}]


def test_from_yaml_errors():
    with pytest.raises(ValueError, match=r"dataAggregationLvel: unknown key \(did you mean dataAggregationLevel\?\)"):
        retina.Config.from_yaml("dataAggregationLvel: low\n")
    with pytest.raises(retina.ParseError, match="yaml: line 2, column 1: end of sequence flow not found"):
        retina.Config.from_yaml("a: [1, 2\n")


def test_from_file(tmp_path):
    p = tmp_path / "config.yaml"
    p.write_text("dataAggregationLevel: low\n")
    assert retina.Config.from_file(str(p)).data_aggregation_level == "low"
    with pytest.raises(OSError) as e:
        retina.Config.from_file(str(tmp_path / "missing.yaml"))
    assert isinstance(e.value, retina.SystemCallError)
    assert e.value.errno == 2
    assert "missing.yaml" in str(e.value)


def test_to_dict_replace_and_equality():
    c = retina.Config(data_aggregation_level="low")
    d = c.to_dict()
    assert list(d) == retina.Config.fields()
    assert d["data_aggregation_level"] == "low"
    c2 = c.replace(data_sampling_rate=4)
    assert c2.data_sampling_rate == 4 and c.data_sampling_rate == 1
    assert c != c2
    assert c == retina.Config(**{k: v for k, v in d.items()})
    with pytest.raises(ValueError):
        c.replace(data_sampling_rate=0)


def test_context_options_and_namespaces_round_trip():
    c = retina.Config(enable_pod_level=True,
                      context_options=[{"metric_name": "dns", "source_labels": ["namespace"], "ttl": "2m"}],
                      metrics_namespaces={"exclude": ["kube-system"]})
    assert c.context_options[0]["ttl"] == datetime.timedelta(minutes=2)
    assert c.metrics_namespaces == {"include": [], "exclude": ["kube-system"]}
    with pytest.raises(ValueError, match='unknown label "pod"'):
        retina.Config(context_options=[{"metric_name": "dns", "source_labels": ["pod"]}])
    with pytest.raises(ValueError, match="mutually exclusive"):
        retina.Config(metrics_namespaces={"include": ["a"], "exclude": ["b"]})


def test_engine_rejects_invalid_config_without_starting():
    with pytest.raises(ValueError, match="dataSamplingRate"):
        c = retina.Config()
        c.data_sampling_rate = 0  # a setter does not validate; the engine does
        retina.Engine(c)
    with pytest.raises(TypeError):
        retina.Engine(no_such_field=1)


def test_retina_defaults_and_our_switches():
    c = retina.Config()
    for name in ("pod_forward_metrics", "kernel_drop_reasons", "interface_stats_per_interface",
                 "tcp_connection_remote_per_address", "tcp_flags_separate_syn_ack",
                 "adv_metrics_without_configuration", "enable_conntrack_metrics"):
        assert getattr(c, name) is False, name
    c = retina.Config(pod_forward_metrics=True, kernel_drop_reasons=True)
    assert c.pod_forward_metrics is True and c.kernel_drop_reasons is True
