"""ONNX export of a deploy-form segmentor, checked against PyTorch in ONNX Runtime and timed side by side.

The graph is ``repseg.models.SegLogits``: input ``input`` is the *preprocessed* 1x3xHxW image (mean/std and
``bgr_to_rgb`` stored in the model's metadata), output ``logits`` the decode head's 1xCx(H/8)x(W/8) logits, bilinear
to HxW with ``upsample=True``. Static shapes; exporter and session options are the ``onnxruntime`` runtime's.
"""
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import torch
from torch import nn

from repseg.apis import build_segmentor, model_config, read_checkpoint, read_config
from repseg.models import SegLogits, config_form, state_dict_form
from repseg.runtime.onnx import INPUT_NAME, onnx_bytes, ort_session
from repseg.utils import LOGIT_RTOL, LogitDiff, atomic_write, compare_logits, median_ms
from .verify import random_input


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
    if config_form(cfg) != 'deploy' or state_dict_form(state, checkpoint, prefix='backbone.') != 'deploy':
        raise ValueError(f'{cfg.filename} / {checkpoint}: not a deploy-form config and checkpoint; convert first: '
                         f'python tools/convert_to_deploy.py CONFIG CHECKPOINT --out-dir DIR, then export '
                         f'DIR/deploy_config.py DIR/deploy.pth')
    return build_segmentor(model_config(cfg), state, meta, checkpoint)


def export_onnx(config: Any, checkpoint: Any, out: Union[str, Path], shape: Sequence[int] = (512, 1024),
                upsample: bool = False, rtol: float = LOGIT_RTOL, repeats: int = 5,
                log: Callable[[str], None] = print) -> OnnxExport:
    """Export, compare with ONNX Runtime on a fixed random input (max |diff| <= ``rtol`` x max |logit|), time both
    (median of ``repeats``, same thread count) and only then write ``out`` atomically."""
    model = load_deploy_segmentor(config, checkpoint)
    module = SegLogits(model, resize=upsample).eval()
    x = random_input(shape)
    pre = model.data_preprocessor
    metadata = dict(mean=str(pre.mean.flatten().tolist()), std=str(pre.std.flatten().tolist()),
                    bgr_to_rgb=str(bool(getattr(pre, 'channel_conversion', False))),
                    upsampled=str(upsample), align_corners=str(module.align_corners),
                    classes=str(list(model.dataset_meta.get('classes', []))), source=str(checkpoint))
    data = onnx_bytes(copy.deepcopy(module), x, metadata)
    session = ort_session(data)
    feed = {INPUT_NAME: x.numpy()}
    with torch.inference_mode():
        ref = module(x)
    got = torch.from_numpy(session.run(None, feed)[0])
    parity = compare_logits(f'onnxruntime vs torch, random {shape[0]}x{shape[1]}', ref, got, rtol=rtol)
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
