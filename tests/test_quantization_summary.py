"""The markdown tables of tools/quantization_table.py on hand-made reports (the end-to-end run is in test_qat.py)."""
from repseg.quantization.summary import COMBINED_HEADER, tables


def report(method: str, fp32: float, int8: float, plain: float, in_float: int) -> dict:
    stat = dict(worst=0.123, median=0.045, worst_layer='backbone.stage3.5.rbr_reparam')
    return {
        'method': method, 'fp32': {'mIoU': fp32}, 'int8': {'mIoU': int8}, 'drop': fp32 - int8,
        'pixel_agreement': 0.97512, 'layers_in_float': [f'layer{i}' for i in range(in_float)],
        'plain_ptq': {'int8': {'mIoU': plain}, 'drop': fp32 - plain},
        'speed': {'fp32_ms': 560.0, 'int8_ms': 344.0, 'speedup': 560 / 344},
        'weights_bytes': {'fp32': 2 ** 20, 'int8': 2 ** 18},
        'kernel_ranges': {'summary': {'channel_max_over_std_worst': dict(stat, worst=39.84, median=26.71),
                                      'channel_range_spread': stat, 'int8_error_per_tensor': stat,
                                      'int8_error_per_channel': dict(stat, worst=0.0638, median=0.0444)}}}


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
    assert rows[0][7:9] == ['560 / 344 (1.63x)', '1.0 / 0.2'] and rows[1][-1] == 'backbone.stage3.5.rbr_reparam'
