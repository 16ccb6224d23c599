"""Child process that holds one measured model (or the conv ceiling) and answers timing requests: one per model and
runtime, so that peak memory is that model's alone and models never share caches or allocator state. The job is one
JSON argument; requests ({"cmd": "time", "n": N}, {"cmd": "finish"}) are JSON lines on stdin, replies JSON lines on
the original stdout (everything libraries print goes to stderr, the log).
"""
import json
import os
import sys
import warnings
from typing import Any, Dict, TextIO

import torch

from repseg.models import SegLogits
from repseg.runtime import prepare
from repseg.utils import LOGIT_RTOL, compare_logits, timed_calls
from .ceiling import build_ceiling
from .complexity import count_macs
from .int8 import INT8_RUNTIME, calibration_frames, prepare_int8
from .memory import PeakMemory
from .models import QUANTIZED_FORM, count_params, load_quantized, seeded_segmentor, to_form, weight_mb


def _parity(name: str, output, reference, judged: bool = True) -> Dict[str, Any]:
    """The logit rule of ``compare_logits`` (argmax agreement recorded, not judged: the benchmark's random inputs
    are small and have near-ties, where one flipped pixel is already 0.02%); ``judged=False`` records only."""
    return compare_logits(name, reference, output, rtol=LOGIT_RTOL if judged else None, min_agreement=0.0).as_dict()


def setup_model(job: Dict[str, Any]):
    """Build, convert, count, check parity and warm up; returns (run, x, info)."""
    device = job['device']
    int8 = job['runtime'] == INT8_RUNTIME
    x = torch.randn(job['batch'], 3, *job['shape'], generator=torch.Generator().manual_seed(job['seed'] + 1))
    x = x.to(device)
    if job['form'] == QUANTIZED_FORM:  # a tools/quantize.py folder as written, no parity (see its quantization.json)
        segmentor = load_quantized(job['config'])
        run = SegLogits(segmentor).eval()
        with torch.inference_mode():
            for _ in range(max(1, job['warmup'])):
                run(x)
        return run, x, {'weight_mb': segmentor.network.weights.numel() / 2**20}
    segmentor = seeded_segmentor(job['config'], job['seed']).to(device)
    info: Dict[str, Any] = {}
    train_out = None
    if job['form'] == 'deploy' and job.get('reparam_check'):
        with torch.inference_mode():
            train_out = SegLogits(segmentor, part=job['part']).eval()(x)
    to_form(segmentor, job['form'])
    model = SegLogits(segmentor, part=job['part']).eval()
    info['params_m'] = count_params(model) / 1e6
    info['weight_mb'] = weight_mb(model)
    if job.get('count_macs'):
        info.update(count_macs(model, x))
    reference = None
    if job['runtime'] != 'eager' or train_out is not None:
        with torch.inference_mode():
            reference = model(x)
    if train_out is not None:
        info['reparam_parity'] = _parity('deploy vs train form', reference, train_out)
    del train_out
    if int8:
        calibration, held_out, info['calibration'] = calibration_frames(segmentor, job['shape'])
        held_out = held_out.to(device)
        with torch.inference_mode():
            held_reference = model(held_out)
        run = prepare_int8(model, x, calibration)
        info['weight_mb'], info['weight_mb_fp32'] = (run.weight_bytes[k] / 2**20 for k in ('int8', 'fp32'))
    else:
        run = prepare(model, job['runtime'], x)
    del model, segmentor
    with torch.inference_mode():
        for i in range(max(1, job['warmup'])):
            out = run(x)
            if i == 0 and job['runtime'] != 'eager' and not int8:
                info['parity'] = _parity(f'{job["runtime"]} vs eager', out, reference)
        if int8:  # int8 is not exact: recorded against fp32 eager, not judged by the fp32 rule
            info['int8_parity'] = {'held_out_frame': _parity('int8, held-out frame', run(held_out), held_reference,
                                                             judged=False),
                                   'random_input': _parity('int8, random input', out, reference, judged=False)}
    del reference, out
    return run, x, info


CEILING_TURN_S = 0.25


def _reply(proto: TextIO, message: Dict[str, Any]) -> None:
    proto.write(json.dumps(message) + '\n')
    proto.flush()


def main() -> None:
    warnings.filterwarnings('ignore')
    proto = os.fdopen(os.dup(1), 'w')
    os.dup2(2, 1)  # library prints (Python or C) go to the log, never into the protocol
    sys.stdout = sys.stderr
    job = json.loads(sys.argv[1])
    device = job['device']
    try:
        torch.set_num_threads(job['threads'])
        torch.set_flush_denormal(True)  # random-weight nets can produce denormals, which would make CPU timings lie
        torch.manual_seed(job['seed'])
        if device.startswith('cuda'):
            torch.backends.cudnn.benchmark = True
        if job['kind'] == 'ceiling':
            fns, gmacs = build_ceiling(tuple(job['shape']), job['batch'], device)
            with torch.inference_mode():  # one conv is short: time several per turn
                calls = {name: max(1, round(CEILING_TURN_S / min(timed_calls(fn, max(2, job['warmup']), device))))
                         for name, fn in fns.items()}

            def repeated(fn, k):
                def run():
                    for _ in range(k):
                        fn()
                return run
            fns = {name: repeated(fn, calls[name]) for name, fn in fns.items()}
            info = {'gmacs': gmacs, 'calls_per_turn': calls}
        else:
            run, x, info = setup_model(job)
            fns, calls = {'model': lambda: run(x)}, {'model': 1}
        memory = PeakMemory(device)
        memory.start()
        _reply(proto, {'ready': True, **info})
    except Exception as err:  # report to the parent, which records it and goes on with the other models
        _reply(proto, {'ready': False, 'error': f'{type(err).__name__}: {" ".join(str(err).split())[:500]}'})
        raise
    for line in sys.stdin:
        request = json.loads(line)
        if request['cmd'] == 'time':
            with torch.inference_mode():
                _reply(proto, {name: [t / calls[name] for t in timed_calls(fn, request['n'], device)]
                               for name, fn in fns.items()})
        elif request['cmd'] == 'finish':
            _reply(proto, memory.stop())
            return


if __name__ == '__main__':
    main()
