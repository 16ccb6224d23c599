"""Child process that holds one measured model (or the conv ceiling) and answers timing requests.

One process per model and runtime, so that peak memory is that model's alone and models never share caches or
allocator state; the parent keeps them all alive and interleaves their timed calls. Protocol: the job is one JSON
argument; replies are JSON lines on the original stdout (everything printed by libraries goes to stderr, the log);
requests are JSON lines on stdin: {"cmd": "time", "n": N} and {"cmd": "finish"}.
"""
import json
import os
import sys
import warnings
from typing import Any, Dict, TextIO


def _setup_torch(threads: int, device: str, seed: int) -> None:
    import torch
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # random-weight nets can produce denormals, which would make CPU timings lie
    torch.manual_seed(seed)
    if device.startswith('cuda'):
        torch.backends.cudnn.benchmark = True


def _make_input(job: Dict[str, Any]):
    import torch
    gen = torch.Generator().manual_seed(job['seed'] + 1)
    return torch.randn(job['batch'], 3, *job['shape'], generator=gen).to(job['device'])


#: Calibration frames of the 'openvino_int8' runtime (one more is held out for its parity record).
INT8_CALIBRATION_FRAMES = 4
INT8_RUNTIMES = frozenset({'openvino_int8'})


def _state_mb(model) -> float:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20


def _int8_frames(segmentor, shape):
    """Calibration crops and one held-out crop of a street frame, normalized as the segmentor's preprocessor does."""
    from repseg.quantization.calibration import street_frames
    pre = segmentor.data_preprocessor
    frames, source = street_frames(tuple(shape), INT8_CALIBRATION_FRAMES + 1, mean=pre.mean.flatten().tolist(),
                                   std=pre.std.flatten().tolist(), bgr_to_rgb=bool(pre.channel_conversion))
    return frames[:-1], frames[-1], f'{INT8_CALIBRATION_FRAMES} {source}'


def setup_model(job: Dict[str, Any]):
    """Build, convert, count, check parity and warm up; returns (run, x, info)."""
    import torch

    from repseg.runtime import prepare
    from .complexity import count_macs
    from .measure import parity
    from .models import QUANTIZED_FORM, Backbone, SegLogits, build_segmentor, count_params, to_form

    wrap = SegLogits if job['part'] == 'model' else (lambda seg: Backbone(seg.backbone))
    device = job['device']
    int8 = job['runtime'] in INT8_RUNTIMES
    x = _make_input(job)
    if job['form'] == QUANTIZED_FORM:
        return _setup_quantized(job, x)
    segmentor = build_segmentor(job['config'], job['seed']).to(device)
    info: Dict[str, Any] = {}
    train_out = None
    if job['form'] == 'deploy' and job.get('reparam_check'):
        with torch.inference_mode():
            train_out = wrap(segmentor).eval()(x)
    to_form(segmentor, job['form'])
    model = wrap(segmentor).eval()
    info['params_m'] = count_params(model) / 1e6
    info['weight_mb'] = _state_mb(model)
    if job.get('count_macs'):
        info.update(count_macs(model, x))
    reference = None
    if job['runtime'] != 'eager' or train_out is not None:
        with torch.inference_mode():
            reference = model(x)
    if train_out is not None:
        info['reparam_parity'] = parity(reference, train_out)
    del train_out
    options = {}
    if int8:
        calibration, held_out, info['calibration'] = _int8_frames(segmentor, job['shape'])
        held_out = held_out.to(device)
        with torch.inference_mode():
            held_reference = model(held_out)
        options['calibration'] = calibration
    run = prepare(model, job['runtime'], x, **options)
    if int8:
        info['weight_mb'], info['weight_mb_fp32'] = (run.weight_bytes[k] / 2**20 for k in ('int8', 'fp32'))
    elif getattr(run, 'model', None) is not None and job['runtime'].startswith('openvino'):
        from repseg.quantization.ptq import weight_bytes
        info['weight_mb'] = weight_bytes(run.model) / 2**20  # the IR's constants, as for int8
    del model, segmentor
    with torch.inference_mode():
        for i in range(max(1, job['warmup'])):
            out = run(x)
            if i == 0 and job['runtime'] != 'eager' and not int8:
                info['parity'] = parity(out, reference)
        if int8:  # int8 is not exact: recorded against fp32 eager, not judged by the 1e-4 rule
            info['int8_parity'] = {'held_out_frame': parity(run(held_out), held_reference, tolerance=None),
                                   'random_input': parity(out, reference, tolerance=None)}
    del reference, out
    return run, x, info


def _setup_quantized(job: Dict[str, Any], x):
    """A tools/quantize.py folder, measured as written (its IR and OpenVINO, no conversion, no parity: its accuracy
    is in its quantization.json)."""
    import torch

    from .models import QuantizedLogits, load_quantized
    segmentor = load_quantized(job['config'])
    run = QuantizedLogits(segmentor).eval()
    info = {'weight_mb': segmentor.network.weights.numel() / 2**20}
    with torch.inference_mode():
        for _ in range(max(1, job['warmup'])):
            run(x)
    return run, x, info


CEILING_TURN_S = 0.25


def _repeated(fn, n: int):
    """``fn`` called ``n`` times; the reply divides by ``n`` (see ``main``)."""
    def run():
        for _ in range(n):
            fn()
    run.calls = n
    return run


def _reply(proto: TextIO, message: Dict[str, Any]) -> None:
    proto.write(json.dumps(message) + '\n')
    proto.flush()


def main() -> None:
    warnings.filterwarnings('ignore')
    proto = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)  # library prints (Python or C) go to the log, never into the protocol
    sys.stdout = sys.stderr
    job = json.loads(sys.argv[1])
    try:
        import torch

        import repseg  # noqa: F401  (compat layer + RepVGG registration, before mmseg.models)
        from .ceiling import build_ceiling
        from .measure import PeakMemory, timed_calls
        _setup_torch(job['threads'], job['device'], job['seed'])
        if job['kind'] == 'ceiling':
            fns, gmacs = build_ceiling(tuple(job['shape']), job['batch'], job['device'])
            inner = {}
            with torch.inference_mode():
                for name, fn in fns.items():
                    first = min(timed_calls(fn, max(2, job['warmup']), job['device']))
                    inner[name] = max(1, round(CEILING_TURN_S / first))  # one conv is short: time several per turn
            fns = {name: _repeated(fn, inner[name]) for name, fn in fns.items()}
            info = {'gmacs': gmacs, 'calls_per_turn': inner}
        else:
            run, x, info = setup_model(job)
            fns = {'model': lambda: run(x)}
        memory = PeakMemory(job['device'])
        memory.start()
        _reply(proto, {'ready': True, **info})
    except Exception as err:  # report to the parent, which records it and goes on with the other models
        _reply(proto, {'ready': False, 'error': f'{type(err).__name__}: {" ".join(str(err).split())[:500]}'})
        raise
    for line in sys.stdin:
        request = json.loads(line)
        if request['cmd'] == 'time':
            with torch.inference_mode():
                _reply(proto, {name: [t / getattr(fn, 'calls', 1) for t in timed_calls(fn, request['n'], job['device'])]
                               for name, fn in fns.items()})
        elif request['cmd'] == 'finish':
            _reply(proto, memory.stop())
            return


if __name__ == '__main__':
    main()
