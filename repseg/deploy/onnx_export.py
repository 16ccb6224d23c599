"""ONNX export of a deploy-form segmentor, checked against PyTorch with onnxruntime and timed side by side.

The graph is the EncoderDecoder's 'tensor' mode: input ``input`` is the *preprocessed* 1x3xHxW float image
(mean/std normalized, RGB when the config's ``bgr_to_rgb``; both stored in the model's metadata), output ``logits``
is 1xCx(H/8)x(W/8), the decode head's logits *not* upsampled, unless ``upsample=True`` (then bilinear to HxW
with the head's ``align_corners``, as mmseg's test step does). Shapes are static: PSP's adaptive pooling is exported
for the one size given. Uses torch's dynamo exporter (needs ``onnxscript``); the TorchScript exporter cannot export
adaptive pooling whose bins do not divide the feature map.
"""
import logging
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from repseg.apis import build_segmentor, model_config, read_checkpoint, read_config
from repseg.utils.io import atomic_write
from .forms import config_form, state_dict_form
from .verify import LogitDiff, compare_logits, random_input


class TensorModeLogits(nn.Module):
    """``segmentor(x, mode='tensor')`` as a plain module, optionally upsampled to the input size."""

    def __init__(self, segmentor: nn.Module, upsample: bool = False):
        super().__init__()
        self.segmentor = segmentor
        self.upsample = upsample
        self.align_corners = bool(getattr(segmentor.decode_head, 'align_corners', False))

    def forward(self, x: Tensor) -> Tensor:
        logits = self.segmentor(x, mode='tensor')
        if self.upsample:
            logits = F.interpolate(logits, size=x.shape[2:], mode='bilinear', align_corners=self.align_corners)
        return logits


@dataclass
class OnnxExport:
    """Parity and timing of one export."""

    path: Path
    parity: LogitDiff
    torch_ms: float
    onnx_ms: float


def load_deploy_segmentor(config: Any, checkpoint: Any) -> nn.Module:
    """A deploy-form segmentor; a train-form config or checkpoint is refused (convert it first: the conversion is
    where equivalence is proven, so export does not do it silently)."""
    cfg = read_config(config)
    state, meta = read_checkpoint(checkpoint)
    if config_form(cfg) != 'deploy' or state_dict_form(state, checkpoint) != 'deploy':
        raise ValueError(f'{cfg.filename} / {checkpoint}: not a deploy-form config and checkpoint; convert first: '
                         f'python tools/convert_to_deploy.py CONFIG CHECKPOINT --out-dir DIR, then export '
                         f'DIR/deploy_config.py DIR/deploy.pth')
    return build_segmentor(model_config(cfg), state, meta, checkpoint)


def onnx_bytes(module: nn.Module, x: Tensor, metadata: Dict[str, str]) -> bytes:
    """Serialized ONNX model of ``module`` at the static input shape of ``x``."""
    logging.getLogger('torch.onnx._internal.exporter._registration').setLevel(logging.ERROR)  # torchvision notes
    program = torch.onnx.export(module, (x,), dynamo=True, input_names=['input'], output_names=['logits'],
                                verbose=False)
    proto = program.model_proto
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def median_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``fn`` in milliseconds over ``repeats`` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def export_onnx(config: Any, checkpoint: Any, out: Union[str, Path], shape: Sequence[int] = (512, 1024),
                upsample: bool = False, rtol: float = 1e-4, repeats: int = 5,
                log: Callable[[str], None] = print) -> OnnxExport:
    """Export, compare with onnxruntime on a fixed random input (max |diff| <= ``rtol`` x max |logit|), time both
    (median of ``repeats``, same thread count) and only then write ``out`` atomically."""
    import onnxruntime as ort  # deploy extra

    model = load_deploy_segmentor(config, checkpoint)
    module = TensorModeLogits(model, upsample).eval()
    x = random_input(shape)
    pre = model.data_preprocessor
    metadata = dict(mean=str(pre.mean.flatten().tolist()), std=str(pre.std.flatten().tolist()),
                    bgr_to_rgb=str(bool(getattr(pre, 'channel_conversion', False))),
                    upsampled=str(upsample), align_corners=str(module.align_corners),
                    classes=str(list(model.dataset_meta.get('classes', []))), source=str(checkpoint))
    data = onnx_bytes(module, x, metadata)

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(data, options, providers=['CPUExecutionProvider'])
    feed = {'input': x.numpy()}
    with torch.inference_mode():
        ref = module(x)
    got = torch.from_numpy(np.asarray(session.run(None, feed)[0]))
    parity = compare_logits(f'onnxruntime vs torch, random {shape[0]}x{shape[1]}', ref, got, rtol=rtol,
                            min_agreement=0.9999)
    log(str(parity))
    if not parity.passed:
        raise ValueError(f'{out}: ONNX model differs from PyTorch beyond {rtol:g} x max |logit|; nothing written')

    with torch.inference_mode():
        torch_ms = median_ms(lambda: module(x), repeats)
    onnx_ms = median_ms(lambda: session.run(None, feed), repeats)
    log(f'median of {repeats} runs, {torch.get_num_threads()} threads, 1x3x{shape[0]}x{shape[1]}: '
        f'PyTorch {torch_ms:.1f} ms | onnxruntime {onnx_ms:.1f} ms')
    with atomic_write(out, 'wb') as handle:
        handle.write(data)
    log(f'wrote {out} ({len(data) / 2**20:.1f} MiB; logits {tuple(ref.shape)}, '
        f'{"upsampled to the input size" if upsample else "at 1/8 of the input size, not upsampled"})')
    return OnnxExport(Path(out), parity, torch_ms, onnx_ms)
