"""The benchmark run: one worker process per model x form x runtime (+ the conv ceiling), timed calls interleaved
round-robin (rotating the order every repeat) so that drift and other load on the machine hit every model alike."""
import json
import os
import statistics
import subprocess
import sys
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from repseg.runtime import check_runtimes
from repseg.utils import cpu_isa
from .int8 import INT8_RUNTIME
from .models import QUANTIZED_FORM, expand_specs, model_name

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
        except OSError:  # BrokenPipeError included
            self.fail('worker died')
            return {}
        reply = self._receive()
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
    """Train forms run eager only (the training-time model: the reference for the deploy speedup), quantized folders
    (``int8_config.py``) in OpenVINO only; deploy and baseline forms run every requested runtime. ``backbone``: which
    deploy backbones are also measured alone (for the 3x3-conv ceiling ratio): 'auto' the first RepVGG config's,
    'all', or 'none' (each costs a worker per runtime).
    """
    if backbone not in BACKBONE_CHOICES:
        raise ValueError(f'backbone={backbone!r}: expected one of {", ".join(BACKBONE_CHOICES)}')
    specs = expand_specs(list(configs))
    deploy = [config for config, form in specs if form == 'deploy']
    measured = {'auto': deploy[:1], 'all': deploy, 'none': []}[backbone]
    own = {'train': ['eager'], QUANTIZED_FORM: ['openvino']}  # a quantized folder runs in its own runtime only
    jobs = [Job('model', config, form, runtime, 'model') for config, form in specs
            for runtime in own.get(form, runtimes)]
    jobs += [Job('model', config, 'deploy', runtime, 'backbone') for config in measured for runtime in runtimes]
    jobs.append(Job('ceiling'))
    return jobs


def run_benchmark(configs: Sequence[str], out_dir: str, shape: Tuple[int, int] = (713, 713), batch: int = 1,
                  repeats: int = 5, device: str = 'cpu', runtimes: Sequence[str] = ('eager',),
                  backbone: str = 'auto', warmup: int = 1, threads: Optional[int] = None,
                  seed: int = 0, log: Callable[[str], None] = print) -> List[Dict[str, Any]]:
    """Measure every model and return the records (see ``records``); the caller writes the reports."""
    runtimes = check_runtimes(runtimes, extra=INT8_RUNTIMES)
    _check_args(shape, batch, repeats, device, warmup)
    configs = [str(Path(c).resolve()) if Path(c).is_file() else c for c in configs]
    jobs = plan_jobs(configs, runtimes, backbone)
    threads = threads or os.cpu_count() or 1
    log_dir = Path(out_dir) / 'logs'
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get('PYTHONPATH')])))
    workers = [Worker(job) for job in jobs]
    macs: Dict[Tuple[str, str, str], Dict[str, float]] = {}
    checked_reparam = set()
    try:
        for i, worker in enumerate(workers):
            job = worker.job
            key = (job.config, job.form, job.part)
            payload = dict(kind=job.kind, config=job.config, form=job.form, runtime=job.runtime, part=job.part,
                           shape=list(shape), batch=batch, device=device, threads=threads, seed=seed,
                           warmup=warmup, count_macs=key not in macs,
                           reparam_check=job.form == 'deploy' and key not in checked_reparam)
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
        for r in range(repeats):
            order = workers[r % len(workers):] + workers[:r % len(workers)]
            for worker in order:
                for name, times in worker.request({'cmd': 'time', 'n': 1}).items():
                    worker.times.setdefault(name, []).extend(times)
            log(f'repeat {r + 1}/{repeats} done')
        for worker in workers:
            worker.info.update(worker.request({'cmd': 'finish'}))
    finally:
        for worker in workers:
            worker.close()
    return records(workers, shape, batch, device, threads, repeats)


def records(workers: List[Worker], shape: Tuple[int, int], batch: int, device: str, threads: int,
            repeats: int) -> List[Dict[str, Any]]:
    """One record per measured model and runtime, with ratios to the ceiling, the train form and the baselines."""
    ceiling = next((w for w in workers if w.job.kind == 'ceiling'), None)
    ceiling_gflops, ceiling_by_runtime = None, {}
    if ceiling and not ceiling.error and ceiling.times:
        ceiling_by_runtime = {name: 2 * ceiling.info['gmacs'] / statistics.median(t)
                              for name, t in ceiling.times.items()}
        ceiling_gflops = max(ceiling_by_runtime.values())
    common = dict(shape=list(shape), batch=batch, device=device, threads=threads, repeats=repeats, cpu_isa=cpu_isa())
    out = []
    for worker in workers:
        job = worker.job
        if job.kind == 'ceiling':
            continue
        rec: Dict[str, Any] = dict(model=model_name(job.config), config=_rel(job.config), form=job.form,
                                   runtime=job.runtime, part=job.part, **common)
        if worker.error or not worker.times.get('model'):
            rec['error'] = worker.error or 'no timing'
            out.append(rec)
            continue
        times = worker.times['model']
        per_image = [batch / t for t in times]
        rec.update(images_per_s=statistics.median(per_image), images_per_s_min=min(per_image),
                   images_per_s_max=max(per_image), latency_ms=1000 * statistics.median(times),
                   latency_ms_all=[1000 * t for t in times])
        rec.update({k: v for k, v in worker.info.items() if k not in rec})
        if 'gmacs' in rec:
            rec['gflops_per_s'] = 2 * rec['gmacs'] * rec['images_per_s']
            if ceiling_gflops and job.runtime not in INT8_RUNTIMES:  # the ceiling is an fp32 one
                rec['ceiling_gflops_per_s'] = ceiling_gflops
                rec['ceiling_gflops_per_s_by_runtime'] = ceiling_by_runtime
                rec['ceiling_ratio'] = rec['gflops_per_s'] / ceiling_gflops
        out.append(rec)
    _add_ratios(out)
    return out


def _add_ratios(recs: List[Dict[str, Any]]) -> None:
    ok = [r for r in recs if 'images_per_s' in r]

    def find(model: str, form: str, runtime: str, part: str) -> Optional[Dict[str, Any]]:
        return next((r for r in ok if (r['model'], r['form'], r['runtime'], r['part']) == (model, form, runtime, part)),
                    None)
    baselines = sorted({r['model'] for r in ok if r['form'] == 'baseline' and r['part'] == 'model'})

    def fastest_fp32(model: str, form: str, part: str) -> Optional[Dict[str, Any]]:
        rows = [r for r in ok if (r['model'], r['form'], r['part']) == (model, form, part)
                and r['runtime'] not in INT8_RUNTIMES]
        return max(rows, key=lambda r: r['images_per_s']) if rows else None
    for rec in ok:
        if rec['runtime'] in INT8_RUNTIMES:
            own = fastest_fp32(rec['model'], rec['form'], rec['part'])
            if own:
                rec['speedup_vs_fp32_fastest'] = rec['images_per_s'] / own['images_per_s']
                rec['fp32_fastest_runtime'] = own['runtime']
            rec['speed_vs_baseline_fp32_fastest'] = {
                base: rec['images_per_s'] / best['images_per_s'] for base in baselines
                for best in [fastest_fp32(base, 'baseline', rec['part'])] if best}
        train = find(rec['model'], 'train', 'eager', rec['part'])
        if rec['form'] == 'deploy' and train:
            rec['speedup_vs_train'] = rec['images_per_s'] / train['images_per_s']
            rec['mem_ratio_vs_train'] = rec['peak_mem_mb'] / train['peak_mem_mb']
            rec['mem_delta_ratio_vs_train'] = (rec['peak_mem_delta_mb'] / train['peak_mem_delta_mb']
                                               if train['peak_mem_delta_mb'] else None)
        if rec['part'] != 'model':
            continue
        rec['speed_vs_baseline'], rec['speed_vs_baseline_same_runtime'] = {}, {}
        for base in baselines:
            stock = find(base, 'baseline', 'eager', 'model')
            if stock:
                rec['speed_vs_baseline'][base] = rec['images_per_s'] / stock['images_per_s']
            same = find(base, 'baseline', rec['runtime'], 'model')
            if same:
                rec['speed_vs_baseline_same_runtime'][base] = rec['images_per_s'] / same['images_per_s']


def _check_args(shape, batch, repeats, device, warmup) -> None:
    if len(shape) != 2 or any(int(s) < 33 for s in shape):
        raise ValueError(f'shape={tuple(shape)}: expected H W, each at least 33')
    for name, value in (('batch', batch), ('repeats', repeats), ('warmup', warmup)):
        if value < 1:
            raise ValueError(f'{name}={value}: expected at least 1')
    if device not in ('cpu', 'cuda') and not device.startswith('cuda:'):
        raise ValueError(f'device={device!r}: expected cpu or cuda')
    if device.startswith('cuda'):
        import torch
        if not torch.cuda.is_available():
            raise ValueError(f'device={device!r}: no CUDA device is available here; expected cpu')


def _rel(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


__all__ = ['BACKBONE_CHOICES', 'INT8_RUNTIMES', 'Job', 'plan_jobs', 'records', 'run_benchmark']
