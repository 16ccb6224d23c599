"""quantization.json as a type (``QuantizationReport``: round trip, refusal of other schema versions and of
non-reports) and the markdown tables of tools/quantization_table.py on hand-made reports (the end-to-end runs are in
test_quantize.py and test_qat.py)."""
import json
import re

import pytest

from repseg.quantization.report import (COMBINED_HEADER, SCHEMA_VERSION, Metrics, QuantizationReport, ReportError,
                                        load_report, tables)


def report(method: str, fp32: float, int8: float, plain: float, in_float: int) -> QuantizationReport:
    stat = dict(worst=0.123, median=0.045, worst_layer='backbone.stage3.5.rbr_reparam')
    layers = [f'layer{i}' for i in range(in_float)]
    control = None
    if method == 'accuracy_control':
        control = dict(int8=dict(mIoU=int8, mAcc=50.0, aAcc=90.0), drop=fp32 - int8, pixel_agreement=0.97512,
                       layers_in_float=layers, ranking_subset=2, speed={'plain_ptq_int8_ms': 300.0})
    return QuantizationReport(
        config='a.py', checkpoint='a.pth', method=method, fp32=Metrics(fp32, 50.0, 90.0),
        int8=Metrics(int8, 49.0, 89.0), drop=fp32 - int8, pixel_agreement=0.97512, layers_in_float=layers,
        layers_int8=13 - in_float,
        calibration=dict(images=3, split='train', pipeline='test', mode='whole', first_images=['x.png']),
        validation=dict(images=2, split='val', runtime='openvino, both fp32 and int8'),
        speed=dict(shape=[1, 3, 64, 128], fp32_ms=560.0, int8_ms=344.0, speedup=560 / 344, threads=2, repeats=3),
        weights_bytes=dict(fp32=2 ** 20, int8=2 ** 18),
        backend={'name': 'openvino + nncf'},
        kernel_ranges={'summary': {'channel_max_over_std_worst': dict(stat, worst=39.84, median=26.71),
                                   'channel_range_spread': stat, 'int8_error_per_tensor': stat,
                                   'int8_error_per_channel': dict(stat, worst=0.0638, median=0.0444)}},
        versions={'torch': '2.13'}, cpu={'int8': 'AVX2 only'},
        agreement_images=[dict(image='f.png', shape=[512, 1024], pixel_agreement=0.9)],
        max_drop=None if method == 'qat' else 1.0,
        plain_ptq=None if method == 'qat' else dict(int8=dict(mIoU=plain, mAcc=0, aAcc=0), drop=fp32 - plain,
                                                    pixel_agreement=0.9, layers_in_float=[]),
        accuracy_control=control)


def cells(line: str) -> list:
    return [c.strip() for c in line.strip().strip('|').split('|')]


def test_combined_table_is_one_row_per_report_with_plain_ptq_beside_the_fallback():
    text = tables([('(a) plain', report('ptq', 37.26, 36.59, 36.59, 0)),
                   ('(a) fallback', report('accuracy_control', 37.26, 37.01, 35.10, 2))], combined=True)
    lines = text.splitlines()
    assert len(lines) == 4 and cells(lines[0]) == COMBINED_HEADER
    plain, fallback = cells(lines[2]), cells(lines[3])
    assert plain == ['(a) plain', 'ptq', '37.26', '36.59', '0.67', '97.51%', '39.8 / 26.7', '12.30 / 4.50',
                     '6.38 / 4.44']
    assert fallback[3] == '37.01 (2 float; plain PTQ 35.10)' and fallback[4] == '0.25'


def test_separate_tables_by_default():
    text = tables([('x', report('qat', 37.26, 36.97, 36.97, 0))])
    headers = [line for line in text.splitlines() if line.startswith('| model |')]
    assert len(headers) == 2 and 'layers in float' in headers[0] and 'worst layer (per tensor)' in headers[1]
    rows = [cells(line) for line in text.splitlines() if line.startswith('| x |')]
    assert rows[0][7:] == ['560 / 344 (1.63x)', '1.0 / 0.2', '90.00% (1)']
    assert rows[1][-1] == 'backbone.stage3.5.rbr_reparam'


@pytest.mark.parametrize('method', ['ptq', 'accuracy_control', 'qat'])
def test_report_round_trip(tmp_path, method):
    written = report(method, 37.26, 36.97, 35.10, 2)
    (tmp_path / 'quantization.json').write_text(written.to_json())
    data = json.loads((tmp_path / 'quantization.json').read_text())
    assert list(data)[0] == 'schema_version' and data['schema_version'] == SCHEMA_VERSION
    loaded = load_report(tmp_path)  # the folder, or the file itself
    assert loaded == written == load_report(tmp_path / 'quantization.json')
    assert isinstance(loaded.fp32, Metrics) and loaded.agreement_images[0]['shape'] == [512, 1024]
    assert (loaded.accuracy_control is None) == (method != 'accuracy_control')


def test_report_of_another_schema_version_is_refused(tmp_path):
    data = report('ptq', 37.26, 36.59, 36.59, 0).as_dict()
    file = tmp_path / 'quantization.json'
    file.write_text(json.dumps(dict(data, schema_version=SCHEMA_VERSION + 1)))
    name = re.escape(str(file))
    with pytest.raises(ReportError, match=rf'^{name}: a quantization report of schema version {SCHEMA_VERSION + 1}; '
                                          rf'this RepSeg reads schema versions 1, {SCHEMA_VERSION}'):
        load_report(file)
    # version 1 (int8 only, before bf16) reads as int8
    old = {k: v for k, v in data.items() if k not in ('precision', 'bf16')}
    file.write_text(json.dumps(dict(old, schema_version=1)))
    back = load_report(file)
    assert back.precision == 'int8' and back.reduced == back.int8 and back.bf16 is None
    del data['schema_version']  # written before reports were versioned
    file.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=rf'^{name}: a quantization report of no schema_version'):
        load_report(tmp_path)


def test_non_report_is_refused_in_one_line(tmp_path):
    file = tmp_path / 'r.json'
    for content, message in (('{"a": 1', 'not a JSON report'), ('[1, 2]', 'not a quantization report'),
                             ('{"metrics": {}}', 'not a quantization report')):
        file.write_text(content)
        with pytest.raises(ReportError, match=message) as err:
            load_report(file)
        assert str(err.value).startswith(f'{file}: ') and '\n' not in str(err.value)
    data = report('ptq', 37.26, 36.59, 36.59, 0).as_dict()
    del data['fp32']['aAcc'], data['layers_int8']
    file.write_text(json.dumps(dict(data, extra=1)))
    with pytest.raises(ReportError, match=r'not a valid quantization report \(top level: missing layers_int8; '
                                          r'unknown extra\)'):
        load_report(file)
    file.write_text(json.dumps(dict(data, layers_int8=13)))
    with pytest.raises(ReportError, match=r'\(fp32: missing aAcc\)'):
        load_report(file)
    with pytest.raises(FileNotFoundError, match='no quantization.json'):
        load_report(tmp_path / 'none')
