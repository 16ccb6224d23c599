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


def setup_model(job: Dict[str, Any]):
    """Build, convert, count, check parity and warm up; returns (run, x, info)."""
    import torch

    from repseg.runtime import prepare
    from .complexity import count_macs
    from .measure import parity
    from .models import Backbone, SegLogits, build_segmentor, count_params, to_form

    wrap = SegLogits if job['part'] == 'model' else (lambda seg: Backbone(seg.backbone))
    device = job['device']
    x = _make_input(job)
    segmentor = build_segmentor(job['config'], job['seed']).to(device)
    info: Dict[str, Any] = {}
    train_out = None
    if job['form'] == 'deploy' and job.get('reparam_check'):
        with torch.inference_mode():
            train_out = wrap(segmentor).eval()(x)
    to_form(segmentor, job['form'])
    model = wrap(segmentor).eval()
    info['params_m'] = count_params(model) / 1e6
    if job.get('count_macs'):
        info.update(count_macs(model, x))
    reference = None
    if job['runtime'] != 'eager' or train_out is not None:
        with torch.inference_mode():
            reference = model(x)
    if train_out is not None:
        info['reparam_parity'] = parity(reference, train_out)
    del train_out
    run = prepare(model, job['runtime'], x)
    del model, segmentor
    with torch.inference_mode():
        for i in range(max(1, job['warmup'])):
            out = run(x)
            if i == 0 and job['runtime'] != 'eager':
                info['parity'] = parity(out, reference)
    del reference, out
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
