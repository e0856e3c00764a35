import math

import pytest

from retina import metrics

TEXT = r'''# HELP networkobservability_forward_count Total forwarded packets
# TYPE networkobservability_forward_count counter
networkobservability_forward_count{direction="egress"} 14
networkobservability_forward_count{direction="ingress"} 3
# TYPE weird gauge
weird{a="x\"y",b="back\\slash",c="line\nbreak", d=",}"} -1.5e3
# TYPE lat histogram
lat_bucket{le="+Inf"} 7
lat_sum 1.25
lat_count 7
untyped_thing NaN
'''


def test_parse():
    s = metrics.parse(TEXT)
    assert s[0] == metrics.Sample("networkobservability_forward_count", {"direction": "egress"}, 14.0, "counter")
    assert s[2].labels == {"a": 'x"y', "b": "back\\slash", "c": "line\nbreak", "d": ",}"}
    assert s[2].value == -1500.0 and s[2].type == "gauge"
    assert [(x.name, x.type) for x in s[3:6]] == [("lat_bucket", "histogram"), ("lat_sum", "histogram"),
                                                  ("lat_count", "histogram")]
    assert math.isnan(s[6].value) and s[6].type == "untyped"
    assert metrics.value(s, "networkobservability_forward_count") == 17
    assert metrics.value(s, "networkobservability_forward_count", direction="ingress") == 3
    assert metrics.value(s, "missing") is None
    df = metrics.to_frame(s)
    assert list(df.columns) == ["name", "labels", "value", "type"] and len(df) == 7


@pytest.mark.parametrize("bad", ['x{a="1"', "x{a=1} 2", "{} 1", "x", "x abc"])
def test_malformed_lines_raise(bad):
    with pytest.raises(ValueError, match="metrics line 1"):
        metrics.parse(bad)
