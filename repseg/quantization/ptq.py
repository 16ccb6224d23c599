"""NNCF post-training quantization of an OpenVINO model (settings: docs/quantization.md), and which layers of the
result are int8. MatMuls stay float: here they are PSP's pools (``runtime/rewrite.py``), whose averaging matrices
depend on the input size, so ranges calibrated at one size would clip at another (and int8 would gain nothing)."""
import sys
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from repseg.runtime.openvino_runtime import compile_options, openvino_version

PRESETS = ('performance', 'mixed')
#: OpenVINO ops that carry weights and that NNCF quantizes.
WEIGHTED_OPS = frozenset({'Convolution', 'GroupConvolution', 'ConvolutionBackpropData', 'MatMul'})
#: OpenVINO ops left in float (see above).
FLOAT_OPS = ('MatMul',)
#: What lies between a layer and its weight constant: NNCF's FakeQuantize, or an int8 constant's decompression.
_WEIGHT_PATH = frozenset({'FakeQuantize', 'Convert', 'Subtract', 'Multiply', 'Reshape', 'Transpose', 'Unsqueeze',
                          'Squeeze'})


def require_nncf() -> Any:
    try:
        import nncf
    except ImportError:
        raise ModuleNotFoundError('nncf is not installed; install the deploy extra: pip install -e ".[deploy]" '
                                  '(or pip install openvino nncf)') from None
    return nncf


def nncf_settings(preset: str, fast_bias_correction: bool, subset_size: int) -> Dict[str, Any]:
    nncf = require_nncf()
    if preset not in PRESETS:
        raise ValueError(f'preset {preset!r}: expected one of {", ".join(PRESETS)}')
    return dict(preset=nncf.QuantizationPreset(preset), target_device=nncf.TargetDevice.CPU, model_type=None,
                subset_size=subset_size, fast_bias_correction=fast_bias_correction,
                ignored_scope=nncf.IgnoredScope(types=list(FLOAT_OPS), validate=False))


def backend_info(preset: str, fast_bias_correction: bool) -> Dict[str, Any]:
    """What quantized the model, for the report."""
    return {'name': 'openvino + nncf', 'openvino': openvino_version(), 'nncf': require_nncf().__version__,
            'preset': preset, 'fast_bias_correction': fast_bias_correction, 'model_type': None,
            'target_device': 'CPU', 'shapes': 'dynamic N x 3 x H x W',
            'compile_options': {k: str(v) for k, v in compile_options().items()}}


def _numpy(item: Any) -> np.ndarray:  # NNCF's OpenVINO backend takes numpy inputs
    return np.asarray(item, dtype=np.float32)


def quantize_model(model: Any, calibration: Sequence[Any], preset: str = 'performance',
                   fast_bias_correction: bool = True) -> Any:
    """int8 ``openvino.Model`` from an fp32 one, calibrated on all of ``calibration`` (network inputs)."""
    nncf = require_nncf()
    return nncf.quantize(model, nncf.Dataset(calibration, _numpy),
                         **nncf_settings(preset, fast_bias_correction, len(calibration)))


def quantize_with_accuracy_control(model: Any, calibration: Sequence[Any], validation: Sequence[Any],
                                   validation_fn: Callable[[Any, Iterable[Any]], Tuple[float, List[float]]],
                                   max_drop: float, preset: str = 'performance', fast_bias_correction: bool = True,
                                   max_iterations: Optional[int] = None, ranking_subset: Optional[int] = None) -> Any:
    """NNCF's accuracy-aware PTQ: harmful layers back to float until the drop is at most ``max_drop``."""
    nncf = require_nncf()
    restorer = nncf.AdvancedAccuracyRestorerParameters(
        max_num_iterations=max_iterations or sys.maxsize, num_ranking_workers=1,
        ranking_subset_size=min(ranking_subset or len(validation), len(validation)))
    return nncf.quantize_with_accuracy_control(
        model, nncf.Dataset(calibration, _numpy), nncf.Dataset(validation), validation_fn, max_drop=max_drop,
        drop_type=nncf.DropType.ABSOLUTE, advanced_accuracy_restorer_parameters=restorer,
        **nncf_settings(preset, fast_bias_correction, len(calibration)))


def layer_name(op: Any) -> str:
    """The PyTorch module path of a weighted OpenVINO op; ops folded with a BN take the BN's name."""
    name = op.get_friendly_name()
    if not name.startswith('__module.'):
        for target in op.output(0).get_target_inputs():
            candidate = target.get_node().get_friendly_name()
            if candidate.startswith('__module.'):
                name = candidate
                break
    path = name.split('/')[0]
    for prefix in ('__module.', 'segmentor.', 'network.'):
        path = path[len(prefix):] if path.startswith(prefix) else path
    parts = path.split('.')
    while len(parts) > 1 and parts[-1] in ('bn', 'conv'):
        parts.pop()
    return '.'.join(parts)


def _weight_precision(op: Any) -> Optional[str]:
    """'int8' or 'float' by where ``op``'s weights come from; None where they are computed (PSP's pools)."""
    node, quantized = op.input_value(1).get_node(), False
    for _ in range(6):
        kind = node.get_type_name()
        if kind == 'Constant':
            compressed = node.get_element_type().get_type_name() in ('i8', 'u8', 'i4', 'u4')
            return 'int8' if quantized or compressed else 'float'
        if kind not in _WEIGHT_PATH:
            return None
        quantized = quantized or kind == 'FakeQuantize'
        node = node.input_value(0).get_node()
    return None


def layer_precisions(model: Any) -> Dict[str, str]:
    """'int8' or 'float' for every weighted layer of an OpenVINO model, by PyTorch module path, in graph order."""
    ops = [op for op in model.get_ordered_ops() if op.get_type_name() in WEIGHTED_OPS and op.get_input_size() > 1]
    return {layer_name(op): precision for op in ops for precision in [_weight_precision(op)] if precision}


def float_layers(model: Any) -> List[str]:
    """The weighted layers an (int8) OpenVINO model keeps in floating point."""
    return [name for name, precision in layer_precisions(model).items() if precision == 'float']


def weight_bytes(model: Any) -> int:
    """Bytes of the model's constants (its weights: what the IR's .bin holds)."""
    return int(sum(op.get_byte_size() for op in model.get_ordered_ops() if op.get_type_name() == 'Constant'))
