"""Child process holding one measured model (or the ceiling): its peak memory is its own, no caches are shared. The
job is one JSON argument; requests ({"cmd": "time", "n": N}, {"cmd": "finish"}) and replies are JSON lines."""
import ctypes
import gc
import json
import os
import resource
import sys
import warnings
from collections import defaultdict
from contextlib import suppress
from typing import Any, Dict, Optional, TextIO, Tuple

import torch
from torch import Tensor

from repseg.models import SegLogits, count_macs
from repseg.runtime import FOLDER_FORMS, OpenVINONetwork, prepare
from repseg.runtime.openvino_runtime import require_openvino
from repseg.utils import LOGIT_RTOL, compare_logits, timed_calls
from .ceiling import ceiling_input, ceiling_network, ceiling_runtimes
from .models import (INT8_RUNTIME, calibration_frames, count_params, load_quantized, prepare_int8, runtime_precision,
                     seeded_segmentor, to_form, weight_mb)


def _parity(name: str, output, reference, judged: bool = True) -> Dict[str, Any]:
    """``compare_logits``, argmax not judged (random inputs' near-ties); ``judged=False``: logits not judged either."""
    return compare_logits(name, reference, output, rtol=LOGIT_RTOL if judged else None, min_agreement=0.0).as_dict()


#: Entries kept per aggregate of a ``--profile`` record.
PROFILE_TOP = 8


def openvino_network(run: Any) -> Optional[OpenVINONetwork]:
    """The OpenVINO network behind a prepared runner (a folder segmentor's once called), or None."""
    if isinstance(run, OpenVINONetwork):
        return run
    network = getattr(getattr(getattr(run, 'segmentor', None), 'network', None), '_network', None)
    return network if isinstance(network, OpenVINONetwork) else None


def executed_info(run: Any) -> Dict[str, str]:
    """``executed_precision``: what an OpenVINO network really runs its float layers in (f32 for bf16 without bf16)."""
    network = openvino_network(run)
    return {'executed_precision': network.executed_precision} if network else {}


def profile_network(network: OpenVINONetwork, x: Tensor, top: int = PROFILE_TOP) -> Dict[str, Any]:
    """One call's executed layer time by node type and by kernel, top first, from a PERF_COUNT compile of its own."""
    compiled = require_openvino().Core().compile_model(network.model, 'CPU', {**network.options, 'PERF_COUNT': True})
    profiled = OpenVINONetwork.from_compiled(compiled)
    with torch.inference_mode():
        profiled(x)
        profiled(x)
    executed = [layer for layer in profiled.request.get_profiling_info() if layer.status == layer.Status.EXECUTED]
    by_type: Dict[str, float] = defaultdict(float)
    by_exec: Dict[str, float] = defaultdict(float)
    for layer in executed:
        ms = layer.real_time.total_seconds() * 1e3
        by_type[layer.node_type] += ms
        by_exec[layer.exec_type] += ms

    def ranked(times: Dict[str, float]) -> Dict[str, float]:
        return dict(sorted(times.items(), key=lambda item: -item[1])[:top])
    return {'total_ms': sum(by_type.values()), 'layers': len(executed), 'by_node_type': ranked(by_type),
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
    device, int8 = job['device'], job['runtime'] == INT8_RUNTIME
    x = torch.randn(job['batch'], 3, *job['shape'], generator=torch.Generator().manual_seed(job['seed'] + 1)).to(device)
    if job['form'] in FOLDER_FORMS:
        return setup_folder(job, x)
    segmentor = seeded_segmentor(job['config'], job['seed']).to(device)
    train_out = None
    if job['form'] == 'deploy' and job.get('reparam_check'):
        with torch.inference_mode():
            train_out = SegLogits(segmentor, part=job['part']).eval()(x)
    to_form(segmentor, job['form'])
    model = SegLogits(segmentor, part=job['part']).eval()
    info: Dict[str, Any] = {'params_m': count_params(model) / 1e6, 'weight_mb': weight_mb(model)}
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
    """The conv stack in each of ``ceiling_runtimes``, each timed call about ``CEILING_TURN_S``: (fns, calls per turn,
    info, OpenVINO targets); a runtime that fails is recorded, so that bf16 or int8 cannot cost the fp32 ceiling."""
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
    """``profile`` of the model, or the ceiling's {runtime: profile}; a failure is recorded, never costs the timings."""
    try:
        found = {name: profile_network(net, x) for name, (net, x) in targets.items()}
    except Exception as err:
        return {'profile_error': _error_line(err)}
    if not found:
        return {}
    return {'profile': found['model'] if job['kind'] == 'model' else found}


def rss_kb(field: str) -> int:
    """A /proc/self/status memory field in KiB (VmRSS: now, VmHWM: peak since the last reset)."""
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ':'))


class PeakMemory:
    """Peak memory between ``start`` (after warm-up) and ``stop``, all and above what was resident at ``start``. CPU:
    VmHWM, reset at ``start`` so that building and compiling do not count; CUDA: ``max_memory_allocated``."""

    def __init__(self, device: str):
        self.device, self.method, self.base_kb = device, '', 0

    def start(self) -> None:
        gc.collect()  # and hand freed heap pages back to the OS, so that the baseline is the live state
        with suppress(OSError, AttributeError):
            ctypes.CDLL('libc.so.6').malloc_trim(0)
        if self.device.startswith('cuda'):  # the statistics of this device's GPU, not of the current one
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base_kb = torch.cuda.memory_allocated(self.device) // 1024
            self.method = f'{self.device} max_memory_allocated'
            return
        self.base_kb = rss_kb('VmRSS')
        try:
            with open('/proc/self/clear_refs', 'w') as handle:
                handle.write('5')
            self.method = 'process peak RSS (VmHWM reset after warm-up)'
        except OSError:
            self.method = 'process peak RSS over the whole process life (ru_maxrss; VmHWM reset not permitted)'

    def stop(self) -> Dict[str, float]:
        if self.device.startswith('cuda'):
            torch.cuda.synchronize(self.device)
            peak_kb = torch.cuda.max_memory_allocated(self.device) // 1024
        elif self.method.startswith('process peak RSS (VmHWM'):
            peak_kb = rss_kb('VmHWM')
        else:
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {'peak_mem_mb': peak_kb / 1024, 'peak_mem_delta_mb': max(0, peak_kb - self.base_kb) / 1024,
                'resident_before_mb': self.base_kb / 1024, 'mem_method': self.method}


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
        if device.startswith('cuda'):  # kernels of this GPU: tensors made as 'cuda' and cuDNN's handles land there
            torch.cuda.set_device(torch.device(device))
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
