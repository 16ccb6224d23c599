"""The benchmark run: one worker process per model x form x runtime (+ the conv ceiling), timed calls interleaved
round-robin (rotating the order every repeat) so that drift and other load on the machine hit every model alike."""
import json
import os
import statistics
import subprocess
import sys
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from repseg.runtime import FOLDER_FORMS, RUNTIMES, check_runtimes
from repseg.utils import cpu_isa
from .ceiling import ceiling_runtime_by_precision
from .models import INT8_RUNTIME, expand_specs, model_name, runtime_precision

INT8_RUNTIMES = frozenset({INT8_RUNTIME})
BACKBONE_CHOICES = ('auto', 'all', 'none')
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Job:
    """What one worker measures."""
    kind: str  # 'model' or 'ceiling'
    config: str = ''
    form: str = ''
    runtime: str = ''
    part: str = 'model'  # 'model' (end to end) or 'backbone'

    @property
    def label(self) -> str:
        if self.kind == 'ceiling':
            return 'ceiling_conv3x3'
        return f'{model_name(self.config)}.{self.form}.{self.runtime}{"" if self.part == "model" else ".backbone"}'

    @property
    def precision(self) -> Optional[str]:  # None for the ceiling, which measures several
        return None if self.kind == 'ceiling' else runtime_precision(self.runtime, self.form)


@dataclass
class Worker:
    """Parent-side handle of a worker process (JSON lines over pipes, stderr to a log file)."""
    job: Job
    proc: Optional[subprocess.Popen] = None
    info: Dict[str, Any] = field(default_factory=dict)
    times: Dict[str, List[float]] = field(default_factory=dict)
    error: str = ''

    def start(self, payload: Dict[str, Any], log_dir: Path, env: Dict[str, str]) -> None:
        with open(log_dir / f'{self.job.label}.log', 'w') as log:
            self.proc = subprocess.Popen([sys.executable, '-m', 'repseg.benchmark.worker', json.dumps(payload)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                                         cwd=os.getcwd(), env=env)
        reply = self._receive()
        if reply.get('ready'):
            self.info.update({k: v for k, v in reply.items() if k != 'ready'})
        else:
            self.fail(reply.get('error') or 'worker exited during setup')

    def request(self, message: Dict[str, Any]) -> Dict[str, Any]:
        if self.error:
            return {}
        try:
            self.proc.stdin.write(json.dumps(message) + '\n')
            self.proc.stdin.flush()
            reply = self._receive()
        except OSError:  # BrokenPipeError included
            reply = {}
        if not reply:
            self.fail('worker died')
        return reply

    def _receive(self) -> Dict[str, Any]:
        line = self.proc.stdout.readline()
        return json.loads(line) if line.strip() else {}

    def fail(self, message: str) -> None:
        self.error = self.error or message
        self.close()

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            with suppress(OSError):
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def plan_jobs(configs: Sequence[str], runtimes: Sequence[str], backbone: str = 'auto') -> List[Job]:
    """Train forms run eager only (the reference for the deploy speedup), quantized folders in OpenVINO only, the
    others every requested runtime; ``backbone``: which deploy backbones are also measured alone (for the ceiling
    ratio): 'auto' the first RepVGG config's, 'all' or 'none'."""
    if backbone not in BACKBONE_CHOICES:
        raise ValueError(f'backbone={backbone!r}: expected one of {", ".join(BACKBONE_CHOICES)}')
    specs = expand_specs(list(configs))
    deploy = [config for config, form in specs if form == 'deploy']
    measured = {'auto': deploy[:1], 'all': deploy, 'none': []}[backbone]
    own = {'train': ['eager'], **{form: ['openvino'] for form in FOLDER_FORMS}}  # a folder runs in its own network
    jobs = [Job('model', config, form, runtime, 'model') for config, form in specs
            for runtime in own.get(form, runtimes)]
    jobs += [Job('model', config, 'deploy', runtime, 'backbone') for config in measured for runtime in runtimes]
    jobs.append(Job('ceiling'))
    return jobs


def ceiling_request(jobs: Sequence[Job]) -> List[str]:
    """The ceiling's runtimes: the model jobs' own, plus one offered runtime per folder precision."""
    runs = [job.runtime for job in jobs if job.kind == 'model' and job.form not in FOLDER_FORMS]
    offered = [INT8_RUNTIME, *(name for name, spec in RUNTIMES.items() if spec.offered())]
    for precision in dict.fromkeys(job.form for job in jobs if job.form in FOLDER_FORMS):
        runs += [name for name in offered if runtime_precision(name) == precision][:1]
    return list(dict.fromkeys(runs))


def default_runtimes(device: str) -> List[str]:
    """``--runtime``'s default: eager and ONNX Runtime on the CPU, eager (the one GPU runtime) on CUDA."""
    return ['eager'] if device.startswith('cuda') else ['eager', 'onnxruntime']


def check_device_runtimes(runtimes: Sequence[str], device: str) -> None:
    """One line, before anything is measured, for a runtime that cannot run on ``device`` (all but eager are CPU's)."""
    kind = device.split(':')[0]
    for name in runtimes:
        devices = {'cpu'} if name == INT8_RUNTIME else RUNTIMES[name].devices
        if kind not in devices:
            raise ValueError(f'runtime {name!r} runs on {", ".join(sorted(devices))} only; with --device {device} '
                             f'measure --runtime eager, or this runtime with --device cpu')


def run_benchmark(configs: Sequence[str], out_dir: str, shape: Tuple[int, int] = (512, 1024), batch: int = 1,
                  repeats: int = 5, device: str = 'cpu', runtimes: Optional[Sequence[str]] = None,
                  backbone: str = 'auto', warmup: int = 1, threads: Optional[int] = None,
                  seed: int = 0, profile: bool = False, sequential: Optional[bool] = None,
                  log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Measure every model and return the records; ``profile``: also where one OpenVINO call spends its time. By
    default the timed calls of all models interleave on the CPU (drift hits every model alike), while on a GPU
    (``sequential``) each model is measured and ended before the next starts, so that one model at a time holds GPU
    memory, and no other model's process is alive while one is timed."""
    _check_args(shape, batch, repeats, device, warmup)
    runtimes = check_runtimes(default_runtimes(device) if runtimes is None else runtimes, extra=INT8_RUNTIMES)
    check_device_runtimes(runtimes, device)
    configs = [str(Path(c).resolve()) if Path(c).is_file() else c for c in configs]
    jobs = plan_jobs(configs, runtimes, backbone)
    threads = threads or os.cpu_count() or 1
    log_dir = Path(out_dir) / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
    workers = [Worker(job) for job in jobs]
    ceiling_runs = ceiling_request(jobs)
    macs: Dict[Tuple[str, str, str], Dict[str, float]] = {}
    checked_reparam = set()
    interleaved = not (device != 'cpu' if sequential is None else sequential)
    try:
        for i, worker in enumerate(workers):
            job = worker.job
            key = (job.config, job.form, job.part)
            payload = dict(asdict(job), shape=list(shape), batch=batch, device=device, threads=threads, seed=seed,
                           warmup=warmup, count_macs=key not in macs, profile=profile,
                           reparam_check=job.form == 'deploy' and key not in checked_reparam,
                           **({'runtimes': ceiling_runs} if job.kind == 'ceiling' else {}))
            log(f'[{i + 1}/{len(workers)}] set up {job.label}')
            worker.start(payload, log_dir, env)
            if worker.error:
                log(f'    failed: {worker.error} (log: {log_dir / (job.label + ".log")})')
                continue
            if 'gmacs' in worker.info and job.kind == 'model':
                macs[key] = {k: worker.info[k] for k in ('gmacs', 'backbone_gmacs') if k in worker.info}
            worker.info.update(macs.get(key, {}))
            if payload['reparam_check']:
                checked_reparam.add(key)
            if not interleaved:
                _measure([worker], repeats, lambda message: None)
                worker.close()
        if interleaved:
            _measure(workers, repeats, log)
    finally:
        for worker in workers:
            worker.close()
    return records(workers, shape, batch, device, threads, repeats)


def _measure(workers: List[Worker], repeats: int, log: Callable[[str], None]) -> None:
    """``repeats`` rounds of one timed call per worker (the order rotating every round), then each worker's finish."""
    for r in range(repeats):
        order = workers[r % len(workers):] + workers[:r % len(workers)]
        for worker in order:
            for name, times in worker.request({'cmd': 'time', 'n': 1}).items():
                worker.times.setdefault(name, []).extend(times)
        log(f'repeat {r + 1}/{repeats} done')
    for worker in workers:
        worker.info.update(worker.request({'cmd': 'finish'}))


def records(workers: List[Worker], shape: Tuple[int, int], batch: int, device: str, threads: int,
            repeats: int) -> List[Dict[str, Any]]:
    """One record per measured model and runtime, with its precision and ratios (``_add_ceiling``, ``add_ratios``)."""
    ceiling = next((w for w in workers if w.job.kind == 'ceiling' and not w.error), None)
    by_runtime = ({name: 2 * ceiling.info['gmacs'] / statistics.median(t) for name, t in ceiling.times.items()}
                  if ceiling else {})
    common = dict(shape=list(shape), batch=batch, device=device, threads=threads, repeats=repeats, cpu_isa=cpu_isa())
    out = []
    for worker in (w for w in workers if w.job.kind != 'ceiling'):
        job, times = worker.job, worker.times.get('model')
        rec: Dict[str, Any] = dict(model=model_name(job.config), config=_rel(job.config), form=job.form,
                                   runtime=job.runtime, precision=job.precision, part=job.part, **common)
        if worker.error or not times:
            rec['error'] = worker.error or 'no timing'
        else:
            per_image = [batch / t for t in times]
            rec.update(images_per_s=statistics.median(per_image), images_per_s_min=min(per_image),
                       images_per_s_max=max(per_image), latency_ms=1000 * statistics.median(times),
                       latency_ms_all=[1000 * t for t in times])
            rec.update({k: v for k, v in worker.info.items() if k not in rec})
            if 'gmacs' in rec:
                rec['gflops_per_s'] = 2 * rec['gmacs'] * rec['images_per_s']
                _add_ceiling(rec, by_runtime, ceiling.info if ceiling else {})
        out.append(rec)
    add_ratios(out)
    return out


def _add_ceiling(rec: Dict[str, Any], by_runtime: Dict[str, float], info: Dict[str, Any]) -> None:
    """Every precision's ceiling and the row's share of its own (none unmeasured: fp32's would flatter bf16 or int8)."""
    if not by_runtime:
        return
    best = ceiling_runtime_by_precision(by_runtime)
    rec.update(ceiling_gflops_per_s_by_runtime=by_runtime,
               ceiling_gflops_per_s_by_precision={precision: by_runtime[rt] for precision, rt in best.items()})
    if info.get('failed'):
        rec['ceiling_failed'] = info['failed']
    runtime = best.get(rec['precision'])
    if runtime:
        rec.update(ceiling_precision=rec['precision'], ceiling_runtime=runtime,
                   ceiling_gflops_per_s=by_runtime[runtime], ceiling_ratio=rec['gflops_per_s'] / by_runtime[runtime])
        if runtime in info.get('profile', {}):
            rec['ceiling_profile'] = info['profile'][runtime]


def fastest(recs: Sequence[Dict[str, Any]], model: str, form: str, part: str,
            precision: str) -> Optional[Dict[str, Any]]:
    """The fastest measured row of ``model`` in ``form`` and ``part`` among the runtimes of ``precision``."""
    rows = [r for r in recs if 'images_per_s' in r
            and (r['model'], r['form'], r['part'], r['precision']) == (model, form, part, precision)]
    return max(rows, key=lambda r: r['images_per_s']) if rows else None


def add_ratios(recs: List[Dict[str, Any]]) -> None:
    """Speed ratios, each within one precision or named by it: a non-fp32 row against its own fastest fp32 runtime;
    deploy against train; every end-to-end row against each baseline's eager, same-runtime, fastest same-precision
    and fastest fp32 rows."""
    ok = [r for r in recs if 'images_per_s' in r]

    def find(model: str, form: str, runtime: str, part: str) -> Optional[Dict[str, Any]]:
        return next((r for r in ok if (r['model'], r['form'], r['runtime'], r['part']) == (model, form, runtime, part)),
                    None)
    baselines = sorted({r['model'] for r in ok if r['form'] == 'baseline' and r['part'] == 'model'})
    for rec in ok:
        if rec['precision'] != 'fp32':
            own = fastest(ok, rec['model'], rec['form'], rec['part'], 'fp32')
            if own:
                rec['speedup_vs_fp32_fastest'] = rec['images_per_s'] / own['images_per_s']
                rec['fp32_fastest_runtime'] = own['runtime']
        train = find(rec['model'], 'train', 'eager', rec['part'])
        if rec['form'] == 'deploy' and train:
            rec['speedup_vs_train'] = rec['images_per_s'] / train['images_per_s']
            rec['mem_ratio_vs_train'] = _ratio(rec['peak_mem_mb'], train['peak_mem_mb'])
            rec['mem_delta_ratio_vs_train'] = _ratio(rec['peak_mem_delta_mb'], train['peak_mem_delta_mb'])
        if rec['part'] != 'model':
            continue
        for key, runtime in (('speed_vs_baseline', 'eager'), ('speed_vs_baseline_same_runtime', rec['runtime'])):
            rows = {base: find(base, 'baseline', runtime, 'model') for base in baselines}
            rec[key] = {base: rec['images_per_s'] / row['images_per_s'] for base, row in rows.items() if row}
        if rec['form'] != 'train':
            _add_baseline_best(rec, ok, baselines, rec['precision'], 'same_precision')
            _add_baseline_best(rec, ok, baselines, 'fp32', 'fp32_fastest')


def _ratio(value: float, reference: float) -> Optional[float]:
    """``value / reference``, None where the reference is 0 (a peak memory of 0 MB): one row never costs the run."""
    return value / reference if reference else None


def _add_baseline_best(rec: Dict[str, Any], ok: List[Dict[str, Any]], baselines: List[str], precision: str,
                       name: str) -> None:
    """``speed_vs_baseline_<name>`` and ``baseline_<name>_runtime``: against each baseline's fastest ``precision``."""
    ratios, runtimes = {}, {}
    for base in baselines:
        best = fastest(ok, base, 'baseline', 'model', precision)
        if best:
            ratios[base], runtimes[base] = rec['images_per_s'] / best['images_per_s'], best['runtime']
    rec[f'speed_vs_baseline_{name}'], rec[f'baseline_{name}_runtime'] = ratios, runtimes


def _check_args(shape, batch, repeats, device, warmup) -> None:
    if len(shape) != 2 or any(int(s) < 33 for s in shape):
        raise ValueError(f'shape={tuple(shape)}: expected H W, each at least 33')
    for name, value in (('batch', batch), ('repeats', repeats), ('warmup', warmup)):
        if value < 1:
            raise ValueError(f'{name}={value}: expected at least 1')
    if device not in ('cpu', 'cuda') and not device.startswith('cuda:'):
        raise ValueError(f'device={device!r}: expected cpu, cuda or cuda:N')
    if device.startswith('cuda'):
        import torch
        if not torch.cuda.is_available():
            raise ValueError(f'device={device!r}: no CUDA device is available here; expected cpu')
        index = int(device.split(':')[1]) if device.startswith('cuda:') and device[5:].isdigit() else 0
        if device not in ('cuda', f'cuda:{index}') or index >= torch.cuda.device_count():
            raise ValueError(f'device={device!r}: expected cuda:0 to cuda:{torch.cuda.device_count() - 1} here')


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path
