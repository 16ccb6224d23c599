"""Child process that holds one measured model (or the conv ceiling) and answers timing requests: one per model and
runtime, so that peak memory is that model's alone and models never share caches or allocator state. The job is one
JSON argument; requests ({"cmd": "time", "n": N}, {"cmd": "finish"}) are JSON lines on stdin, replies JSON lines on
the original stdout (everything libraries print goes to stderr, the log). With ``profile`` in the job, the finish
reply adds where an OpenVINO network spends one call (``profile_network``).
"""
import json
import os
import sys
import warnings
from collections import defaultdict
from typing import Any, Dict, Optional, TextIO, Tuple

import torch
from torch import Tensor

from repseg.models import SegLogits
from repseg.runtime import FOLDER_FORMS, OpenVINONetwork, prepare
from repseg.runtime.openvino_runtime import require_openvino
from repseg.utils import LOGIT_RTOL, compare_logits, timed_calls
from .ceiling import ceiling_input, ceiling_network, ceiling_runtimes
from .complexity import count_macs
from .int8 import INT8_RUNTIME, calibration_frames, prepare_int8
from .memory import PeakMemory
from .models import count_params, load_quantized, runtime_precision, seeded_segmentor, to_form, weight_mb


def _parity(name: str, output, reference, judged: bool = True) -> Dict[str, Any]:
    """The logit rule of ``compare_logits`` (argmax agreement recorded, not judged: the benchmark's random inputs
    are small and have near-ties, where one flipped pixel is already 0.02%); ``judged=False`` records only."""
    return compare_logits(name, reference, output, rtol=LOGIT_RTOL if judged else None, min_agreement=0.0).as_dict()


#: Entries kept per aggregate of a ``--profile`` record.
PROFILE_TOP = 8


def openvino_network(run: Any) -> Optional[OpenVINONetwork]:
    """The OpenVINO network behind a prepared runner: the runner itself, or a folder segmentor's (compiled by its first
    call); None for other runtimes."""
    if isinstance(run, OpenVINONetwork):
        return run
    network = getattr(getattr(getattr(run, 'segmentor', None), 'network', None), '_network', None)
    return network if isinstance(network, OpenVINONetwork) else None


def executed_info(run: Any) -> Dict[str, str]:
    """``executed_precision``: what an OpenVINO network really compiled its float layers in ('f32' or 'bf16'; a bf16
    request runs in f32 on a CPU without bf16), so that such a row shows it; nothing for other runtimes."""
    network = openvino_network(run)
    return {'executed_precision': network.executed_precision} if network else {}


def profile_network(network: OpenVINONetwork, x: Tensor, top: int = PROFILE_TOP) -> Dict[str, Any]:
    """Where one call spends its time: the same model compiled once more with PERF_COUNT (the timed network stays
    unprofiled), a warm-up call and a profiled one, the executed layers' real time summed by node type (Convolution,
    FakeQuantize, Reorder, ...) and by exec type (the kernel picked: jit_avx2_I8 against ref_any_f32), top first."""
    compiled = require_openvino().Core().compile_model(network.model, 'CPU', {**network.options, 'PERF_COUNT': True})
    profiled = OpenVINONetwork.from_compiled(compiled)
    with torch.inference_mode():
        profiled(x)
        profiled(x)
    by_type: Dict[str, float] = defaultdict(float)
    by_exec: Dict[str, float] = defaultdict(float)
    layers = 0
    for layer in profiled.request.get_profiling_info():
        if layer.status == layer.Status.EXECUTED:
            ms = layer.real_time.total_seconds() * 1e3
            by_type[layer.node_type] += ms
            by_exec[layer.exec_type] += ms
            layers += 1

    def ranked(times: Dict[str, float]) -> Dict[str, float]:
        return dict(sorted(times.items(), key=lambda item: -item[1])[:top])
    return {'total_ms': sum(by_type.values()), 'layers': layers, 'by_node_type': ranked(by_type),
            'by_exec_type': ranked(by_exec)}


def setup_folder(job: Dict[str, Any], x: Tensor):
    """A tools/quantize.py folder as written, in its own network; no parity (see its quantization.json)."""
    segmentor = load_quantized(job['config'], job['form'])
    run = SegLogits(segmentor).eval()
    with torch.inference_mode():
        for _ in range(max(1, job['warmup'])):
            run(x)
    return run, x, {'weight_mb': segmentor.network.weights.numel() / 2**20, **executed_info(run)}


def setup_model(job: Dict[str, Any]):
    """Build, convert, count, check parity and warm up; returns (run, x, info)."""
    device = job['device']
    int8 = job['runtime'] == INT8_RUNTIME
    x = torch.randn(job['batch'], 3, *job['shape'], generator=torch.Generator().manual_seed(job['seed'] + 1))
    x = x.to(device)
    if job['form'] in FOLDER_FORMS:
        return setup_folder(job, x)
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
    info.update(executed_info(run))
    exact = runtime_precision(job['runtime'], job['form']) == 'fp32'  # bf16 is recorded, not judged by the fp32 rule
    with torch.inference_mode():
        for i in range(max(1, job['warmup'])):
            out = run(x)
            if i == 0 and job['runtime'] != 'eager' and not int8:
                info['parity'] = _parity(f'{job["runtime"]} vs eager', out, reference, judged=exact)
        if int8:  # int8 is not exact: recorded against fp32 eager, not judged by the fp32 rule
            info['int8_parity'] = {'held_out_frame': _parity('int8, held-out frame', run(held_out), held_reference,
                                                             judged=False),
                                   'random_input': _parity('int8, random input', out, reference, judged=False)}
    del reference, out
    return run, x, info


CEILING_TURN_S = 0.25


def setup_ceiling(job: Dict[str, Any]):
    """The conv stack in each of ``ceiling_runtimes`` of the job's runtimes, each timed call repeated to last about
    ``CEILING_TURN_S`` (one stack is short); returns (fns, calls per turn, info, {runtime: (network, input)} of its
    OpenVINO networks). A runtime that fails to prepare is recorded in ``info['failed']``: a bf16 or int8 failure
    must not cost the fp32 ceiling."""
    device = job['device']
    x, gmacs = ceiling_input(tuple(job['shape']), job['batch'], device)
    networks, failed = {}, {}
    for runtime in ceiling_runtimes(job.get('runtimes', ()), device):
        try:
            networks[runtime] = ceiling_network(runtime, x)
        except Exception as err:  # recorded; the other precisions' ceilings stand
            failed[runtime] = _error_line(err)
    fns = {name: (lambda run=run: run(x)) for name, run in networks.items()}
    with torch.inference_mode():
        calls = {name: max(1, round(CEILING_TURN_S / min(timed_calls(fn, max(2, job['warmup']), device))))
                 for name, fn in fns.items()}

    def repeated(fn, k):
        def run():
            for _ in range(k):
                fn()
        return run
    info = {'gmacs': gmacs, 'calls_per_turn': calls, **({'failed': failed} if failed else {})}
    targets = {name: (net, x) for name, net in networks.items() if isinstance(net, OpenVINONetwork)}
    return {name: repeated(fn, calls[name]) for name, fn in fns.items()}, calls, info, targets


def _profiles(job: Dict[str, Any], targets: Dict[str, Tuple[OpenVINONetwork, Tensor]]) -> Dict[str, Any]:
    """``profile``: a model's profile, or the ceiling's {runtime: profile}; nothing without OpenVINO networks. A
    failure is recorded (``profile_error``), never costs the timings."""
    try:
        found = {name: profile_network(net, x) for name, (net, x) in targets.items()}
    except Exception as err:
        return {'profile_error': _error_line(err)}
    if not found:
        return {}
    return {'profile': found['model'] if job['kind'] == 'model' else found}


def _error_line(err: BaseException) -> str:
    return f'{type(err).__name__}: {" ".join(str(err).split())[:500]}'


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
            fns, calls, info, targets = setup_ceiling(job)
        else:
            run, x, info = setup_model(job)
            fns, calls, network = {'model': lambda: run(x)}, {'model': 1}, openvino_network(run)
            targets = {'model': (network, x)} if network else {}
        memory = PeakMemory(device)
        memory.start()
        _reply(proto, {'ready': True, **info})
    except Exception as err:  # report to the parent, which records it and goes on with the other models
        _reply(proto, {'ready': False, 'error': _error_line(err)})
        raise
    for line in sys.stdin:
        request = json.loads(line)
        if request['cmd'] == 'time':
            with torch.inference_mode():
                _reply(proto, {name: [t / calls[name] for t in timed_calls(fn, request['n'], device)]
                               for name, fn in fns.items()})
        elif request['cmd'] == 'finish':  # memory first: profiling compiles the model once more
            reply = memory.stop()
            _reply(proto, {**reply, **_profiles(job, targets)} if job.get('profile') else reply)
            return


if __name__ == '__main__':
    main()
