"""Bad input, tool by tool: exit status 2 (130 for an interrupt), one ``error:`` line naming the file or key, no
traceback, and every file that existed before the run unchanged; nothing half-written, no temporary file left."""
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, make_tiny, run_tool_in_process

import repseg.apis.batch
import repseg.deploy.convert
from repseg.deploy import convert_to_deploy
from repseg.utils import WriteError, atomic_dir, atomic_write, write_file
from repseg.utils.io import WRITE_ERRNOS


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
    """The tiny model in both forms, and files broken in the usual ways."""
    root = tmp_path_factory.mktemp('bad')
    config, checkpoint = make_tiny(root)
    convert_to_deploy(config, checkpoint, root / 'deploy', shape=(64, 128), log=lambda s: None)
    data = checkpoint.read_bytes()
    (root / 'truncated.pth').write_bytes(data[:len(data) // 2])
    (root / 'empty.pth').write_bytes(b'')
    (root / 'notes.pth').write_text('not a checkpoint, whatever the name says\n')
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    state = {k: (v[:5] if k.startswith('decode_head.conv_seg.') else v) for k, v in state.items()}
    torch.save({'state_dict': state}, root / 'five_classes.pth')
    text = config.read_text()
    (root / 'syntax.py').write_text(text.replace('model = dict(', 'model = dict(,', 1))
    (root / 'cut.py').write_text(text[:text.index('decode_head')])
    (root / 'taken').mkdir()
    (root / 'taken' / 'earlier.png').write_bytes(b'an earlier result')
    (root / 'model.onnx').write_bytes(b'an earlier export')
    resume = root / 'resume'
    resume.mkdir()
    (resume / 'iter_2.pth').write_bytes(data[:1000])
    (resume / 'last_checkpoint').write_text(str(resume / 'iter_2.pth'))
    return root


def snapshot(root: Path) -> dict:
    return {p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob('*') if p.is_file()}


#: (tool, arguments with {root}, what the one error line must contain)
CASES = {
    'test: train checkpoint, deploy config': (
        'test.py', ['{root}/deploy/deploy_config.py', '{root}/tiny.pth'],
        '{root}/tiny.pth: a train-form RepVGG checkpoint, but the config builds the deploy form; convert it'),
    'test: deploy checkpoint, train config': (
        'test.py', ['{root}/tiny.py', '{root}/deploy/deploy.pth'],
        '{root}/deploy/deploy.pth: a deploy-form RepVGG checkpoint, but the config builds the train form; use the '
        'deploy_config.py'),
    'test: other number of classes': (
        'test.py', ['{root}/tiny.py', '{root}/five_classes.pth'],
        '{root}/five_classes.pth: decode_head.conv_seg.weight has 5 classes, the config builds 19'),
    'test: truncated checkpoint': (
        'test.py', ['{root}/tiny.py', '{root}/truncated.pth'],
        '{root}/truncated.pth: not a readable PyTorch checkpoint, truncated or corrupt'),
    'test: empty checkpoint': (
        'test.py', ['{root}/tiny.py', '{root}/empty.pth'], '{root}/empty.pth: not a'),
    'test: text file named .pth': (
        'test.py', ['{root}/tiny.py', '{root}/notes.pth'], '{root}/notes.pth: not a'),
    'test: config with a syntax error': (
        'test.py', ['{root}/syntax.py', '{root}/tiny.pth'], '{root}/syntax.py (or a _base_ file it names): not a '
        'valid Python config, invalid syntax at line'),
    'test: config cut short': (
        'test.py', ['{root}/cut.py', '{root}/tiny.pth'], '{root}/cut.py (or a _base_ file it names): not a valid'),
    'test: unknown --cfg-options key': (
        'test.py', ['{root}/tiny.py', '{root}/tiny.pth', '--cfg-options', 'model.backbone.no_such_key=1'],
        'no_such_key'),
    'train: unknown dataset argument in --cfg-options': (
        'train.py', ['{root}/tiny.py', '--work-dir', '{root}/w', '--cfg-options',
                     'train_dataloader.dataset.data_rot=x'],
        "--cfg-options train_dataloader.dataset.data_rot: {root}/tiny.py has no key 'data_rot'"),
    'train: --amp without CUDA': (
        'train.py', ['{root}/tiny.py', '--amp', '--work-dir', '{root}/amp'], '--amp: needs a CUDA device'),
    'train: --resume from a truncated last checkpoint': (
        'train.py', ['{root}/tiny.py', '--resume', '--work-dir', '{root}/resume'],
        '{root}/resume/iter_2.pth: not a readable PyTorch checkpoint, truncated or corrupt'),
    'train: --load-from a deploy checkpoint': (
        'train.py', ['{root}/tiny.py', '--load-from', '{root}/deploy/deploy.pth', '--work-dir', '{root}/load'],
        '{root}/deploy/deploy.pth: a deploy-form RepVGG checkpoint, but the config builds the train form'),
    'infer: out-dir holds an earlier result': (
        'infer.py', ['{root}/tiny.py', '{root}/tiny.pth', '{root}/data/leftImg8bit/val', '--out-dir', '{root}/taken'],
        '{root}/taken: holds an earlier result (earlier.png); choose another out-dir, or pass --force'),
    'infer: train checkpoint, deploy config': (
        'infer.py', ['{root}/deploy/deploy_config.py', '{root}/tiny.pth', '{root}/data', '--out-dir', '{root}/o'],
        '{root}/tiny.pth: a train-form RepVGG checkpoint, but the config builds the deploy form'),
    'convert: out-dir holds an earlier result': (
        'convert_to_deploy.py', ['{root}/tiny.py', '{root}/tiny.pth', '--out-dir', '{root}/taken'],
        '{root}/taken: holds an earlier result (earlier.png)'),
    'test: --out-dir holds earlier predictions': (
        'test.py', ['{root}/tiny.py', '{root}/tiny.pth', '--out-dir', '{root}/taken', '--work-dir', '{root}/t'],
        '{root}/taken: holds an earlier result (earlier.png)'),
    'benchmark: out-dir holds an earlier result': (
        'benchmark.py', ['--configs', '{root}/tiny.py', '--out-dir', '{root}/taken'],
        '{root}/taken: holds an earlier result (earlier.png)'),
    'import_pretrained: destination is a folder': (
        'import_pretrained.py', ['{root}/tiny.pth', '{root}/taken'], '{root}/taken: is a folder; expected the path'),
    'export_onnx: output exists': (
        'export_onnx.py', ['{root}/deploy/deploy_config.py', '{root}/deploy/deploy.pth', '--out', '{root}/model.onnx'],
        '{root}/model.onnx: exists (an earlier result); choose another path, or pass --force'),
}


def error_line(proc, root: Path) -> str:
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_is_one_line_and_changes_nothing(tiny, case):
    tool, args, expected = CASES[case]
    before = snapshot(tiny)
    proc = run_tool_in_process(tool, *(a.format(root=tiny) for a in args), cwd=tiny)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert expected.format(root=tiny) in error_line(proc, tiny)
    assert snapshot(tiny) == before  # nothing written, nothing changed, no temporary file left


def copy_data(tiny: Path, tmp_path: Path) -> Path:
    data = tmp_path / 'data'
    for src in (tiny / 'data').rglob('*'):
        if src.is_file():
            (data / src.relative_to(tiny / 'data')).parent.mkdir(parents=True, exist_ok=True)
            (data / src.relative_to(tiny / 'data')).write_bytes(src.read_bytes())
    return data


def test_cut_short_image_in_a_dataset_is_one_line(tiny, tmp_path):
    """A PNG cut short in the val set (OpenCV would decode its upper part, grey below): tools/test.py names it."""
    data = copy_data(tiny, tmp_path)
    image = sorted((data / 'leftImg8bit' / 'val').rglob('*.png'))[-1]
    image.write_bytes(image.read_bytes()[:-200])
    proc = run_tool_in_process('test.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--work-dir', tmp_path / 'wd',
                               '--cfg-options', f'test_dataloader.dataset.data_root={data}', cwd=tmp_path)
    assert proc.returncode == 2
    assert error_line(proc, tmp_path) == (f'error: {image}: truncated image (no end-of-image marker); expected a '
                                          f'complete image file')


def test_label_error_in_a_dataloader_worker_is_the_workers_line(tiny, tmp_path):
    """A label outside the classes, found by a dataloader worker process: its own one-line message, not the
    worker's traceback that torch packs into the re-raised error."""
    data = copy_data(tiny, tmp_path)
    label = sorted((data / 'gtFine' / 'val').rglob('*_labelTrainIds.png'))[0]
    mask = cv2.imread(str(label), cv2.IMREAD_UNCHANGED)
    mask[0, 0] = 77
    cv2.imwrite(str(label), mask)
    # a process of its own, as a user runs it: with the worker forked from pytest's process, NNCF's QAT tests later
    # in the session crashed (SIGSEGV)
    proc = subprocess.run([sys.executable, str(REPO / 'tools' / 'test.py'), str(tiny / 'tiny.py'),
                           str(tiny / 'tiny.pth'), '--work-dir', str(tmp_path / 'wd'), '--cfg-options',
                           f'test_dataloader.dataset.data_root={data}', 'test_dataloader.num_workers=1'],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = error_line(proc, tmp_path)
    assert str(label) in line and '77' in line and 'Original Traceback' not in line


def test_interrupt_while_writing_leaves_the_earlier_state(tiny, monkeypatch, tmp_path):
    """Ctrl-C in the middle of writing: exit 130, one line, the out-dir as it was (here: absent, then an earlier
    result replaced with --force), no temporary folder beside it."""
    out = tmp_path / 'out'
    calls = []

    def interrupted_write(path, data):
        calls.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(repseg.deploy.convert, 'write_file', interrupted_write)
    proc = run_tool_in_process('convert_to_deploy.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--out-dir', out,
                               cwd=tmp_path)
    assert proc.returncode == 130 and calls and error_line(proc, tmp_path).startswith('error: interrupted')
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    out.mkdir()
    (out / 'earlier.png').write_bytes(b'earlier')
    images = tiny / 'data' / 'leftImg8bit' / 'val'
    seen = []

    def interrupted_inference(model, image):  # the second image: the first one's outputs are already written
        seen.append(image.shape)
        if len(seen) == 2:
            raise KeyboardInterrupt
        return np.zeros(image.shape[:2], np.uint8)

    monkeypatch.setattr(repseg.apis.batch, 'inference', interrupted_inference)
    proc = run_tool_in_process('infer.py', tiny / 'tiny.py', tiny / 'tiny.pth', images, '--out-dir', out, '--force',
                               cwd=tmp_path)
    assert proc.returncode == 130 and len(seen) == 2
    assert [p.name for p in tmp_path.iterdir()] == ['out'] and [p.name for p in out.iterdir()] == ['earlier.png']


def test_force_replaces_the_folder_whole(tiny, tmp_path):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'earlier.png').write_bytes(b'earlier')
    proc = run_tool_in_process('infer.py', tiny / 'tiny.py', tiny / 'tiny.pth', tiny / 'data' / 'leftImg8bit' / 'val',
                               '--out-dir', out, '--force', cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'earlier.png' not in {p.name for p in out.rglob('*')} and len(list(out.rglob('*_trainIds.png'))) == 2
    assert [p.name for p in tmp_path.iterdir()] == ['out']


def test_truncated_jpeg_is_a_bad_file_and_unused_files_are_named(tiny, tmp_path):
    """A JPEG cut short decodes in part with only a decoder warning: it is reported and skipped like any
    unreadable file; a file without an image suffix is named as not used."""
    images = tmp_path / 'images'
    images.mkdir()
    frame = cv2.imread(str(sorted((tiny / 'data' / 'leftImg8bit' / 'val').rglob('*.png'))[0]))
    jpeg = cv2.imencode('.jpg', frame)[1].tobytes()
    (images / 'good.jpg').write_bytes(jpeg)
    (images / 'cut.jpg').write_bytes(jpeg[:len(jpeg) * 2 // 3])
    (images / 'README').write_text('notes\n')
    out = tmp_path / 'out'
    proc = run_tool_in_process('infer.py', tiny / 'tiny.py', tiny / 'tiny.pth', images, '--out-dir', out, cwd=tmp_path)
    assert proc.returncode == 2
    assert error_line(proc, tmp_path) == (f'error: {images / "cut.jpg"}: not a readable image (truncated, corrupt '
                                          f'or not an image file); skipped')
    assert f'note: {images / "README"}: not an image or video file name' in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ['good_color.png', 'good_overlay.png', 'good_trainIds.png']


@pytest.mark.parametrize('where', ['evaluation', 'writing'])
def test_interrupted_quantization_leaves_the_earlier_folder(tiny, monkeypatch, tmp_path, where):
    """Ctrl-C while tools/quantize.py evaluates int8 against fp32, or while it writes the folder: exit 130 and the
    out-dir (an earlier result, given with --force) exactly as it was."""
    pytest.importorskip('nncf')
    import repseg.quantization.pipeline

    reached, write = [], repseg.quantization.pipeline.write_file

    def interrupt(*args, **kwargs):
        reached.append(where)
        raise KeyboardInterrupt

    def write_into_the_new_folder_interrupted(path, data):
        if Path(str(path)).parent.name.startswith('.int8.'):  # the folder built beside the out-dir
            interrupt()
        return write(path, data)

    if where == 'evaluation':
        monkeypatch.setattr(repseg.quantization.pipeline, 'evaluate', interrupt)
    else:
        monkeypatch.setattr(repseg.quantization.pipeline, 'write_file', write_into_the_new_folder_interrupted)
    out = tmp_path / 'int8'
    out.mkdir()
    (out / 'earlier.png').write_bytes(b'earlier')
    proc = run_tool_in_process('quantize.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--out-dir', out, '--num-calib', '2',
                               '--force', cwd=tmp_path)
    assert proc.returncode == 130 and reached == [where], proc.stderr[-3000:]
    assert error_line(proc, tmp_path).startswith('error: interrupted')
    assert [p.name for p in tmp_path.iterdir()] == ['int8'] and [p.name for p in out.iterdir()] == ['earlier.png']


def test_files_that_appear_during_the_run_are_not_replaced(tmp_path):
    """The out-dir is checked again before the finished folder is moved onto it: a file someone wrote there
    meanwhile is refused, not silently replaced, and the finished folder is discarded."""
    out = tmp_path / 'out'
    with pytest.raises(FileExistsError, match=r'out: holds an earlier result \(theirs.png\)'):
        with atomic_dir(out) as tmp:
            (tmp / 'ours.png').write_bytes(b'ours')
            out.mkdir()
            (out / 'theirs.png').write_bytes(b'theirs')
    assert [p.name for p in tmp_path.iterdir()] == ['out'] and [p.name for p in out.iterdir()] == ['theirs.png']


# --- writes the machine refuses part-way -----------------------------------------------------------------------------
# A file-size limit (RLIMIT_FSIZE) in a child process: Python ignores SIGXFSZ, so the write that crosses it gets EFBIG,
# as one that fills a disk gets ENOSPC. Each limit lies below the size of the result file (tiny model: deploy.pth
# 1.5 MB, int8.bin 0.4 MB, an overlay PNG 16 kB, benchmark.png 23 kB) and above everything written before it (mmengine's
# copy of a config: 8.4 kB).

#: CPU flags of an AMX Xeon, for the bf16 folder on a CPU without bf16 (OpenVINO then computes in f32)
AMX_FLAGS = ['avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'amx_bf16', 'amx_int8']
SIMULATE_AMX = f'import repseg.runtime.registry as r; r.cpu_flags = lambda: {AMX_FLAGS!r}'
#: Set the limit only when the first labelId PNG is written: tools/test.py's logs and config dump are larger.
LIMIT_AT_FIRST_PREDICTION = '''
import resource
import repseg.evaluation.labelid_writer as w
_process = w.CityscapesLabelIdWriter.process
def process(self, *args):
    resource.setrlimit(resource.RLIMIT_FSIZE, (500, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return _process(self, *args)
w.CityscapesLabelIdWriter.process = process
'''

#: (tool, arguments with {root} (inputs) and {out} (where results go), file-size limit in bytes, child prelude,
#: the file the line names)
WRITE_CASES = {
    'convert_to_deploy': ('convert_to_deploy.py', ['{root}/tiny.py', '{root}/tiny.pth', '--out-dir', '{out}/deploy'],
                          500_000, '', '{out}/deploy/deploy.pth'),
    'quantize int8': ('quantize.py', ['{root}/deploy/deploy_config.py', '{root}/deploy/deploy.pth', '--out-dir',
                                      '{out}/int8', '--num-calib', '2'], 200_000, '', '{out}/int8/int8.bin'),
    'quantize bf16': ('quantize.py', ['{root}/deploy/deploy_config.py', '{root}/deploy/deploy.pth', '--out-dir',
                                      '{out}/bf16', '--precision', 'bf16'], 200_000, SIMULATE_AMX,
                      '{out}/bf16/bf16.bin'),
    'infer': ('infer.py', ['{root}/deploy/deploy_config.py', '{root}/deploy/deploy.pth',
                           '{root}/data/leftImg8bit/val/samplingen/samplingen_000000_000019_leftImg8bit.png',
                           '--out-dir', '{out}/masks'], 12_000, '',
              '{out}/masks/samplingen_000000_000019_leftImg8bit_overlay.png'),
    'export_onnx': ('export_onnx.py', ['{root}/deploy/deploy_config.py', '{root}/deploy/deploy.pth', '--out',
                                       '{out}/model.onnx'], 500_000, '', '{out}/model.onnx'),
    'prune': ('prune.py', ['{root}/deploy/deploy_config.py', '{root}/deploy/deploy.pth', '--out-dir', '{out}/pruned',
                           '--ratio', '0.3', '--shape', '64', '128', '--round-to', '4'], 500_000, '',
              '{out}/pruned/pruned.pth'),
    'import_pretrained': ('import_pretrained.py', ['{root}/RepVGG-A0-train.pth', '{out}/a0.pth'], 1_000_000, '',
                          '{out}/a0.pth'),
    'benchmark': ('benchmark.py', ['--configs', '{root}/tiny.py', '--shape', '64', '128', '--repeats', '1',
                                   '--warmup', '1', '--runtime', 'eager', '--backbone', 'none', '--out-dir',
                                   '{out}/bench'], 10_000, '', '{out}/bench/benchmark.png'),
    'test --out-dir': ('test.py', ['{root}/tiny.py', '{root}/tiny.pth', '--out-dir', '{out}/pred', '--force',
                                   '--work-dir', '{root}/work_{case}'], None, LIMIT_AT_FIRST_PREDICTION,
                       '{out}/pred/samplingen_000000_000019_pred_labelIds.png'),
}


def run_limited(tool: str, args, limit, prelude: str = '', cwd: Path = REPO) -> subprocess.CompletedProcess:
    """``python tools/<tool> ARGS`` in a child process whose files may grow to ``limit`` bytes (None: no limit set
    before the tool; ``prelude`` may set one later), after ``prelude``."""
    limited = f'resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))'
    code = '\n'.join(['import resource, runpy, sys', prelude, '' if limit is None else limited,
                      'sys.argv = sys.argv[1:]', "runpy.run_path(sys.argv[0], run_name='__main__')"])
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE='1')
    return subprocess.run([sys.executable, '-c', code, str(REPO / 'tools' / tool), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def official_a0(tiny):
    """An official-format RepVGG-A0 train checkpoint (33 MB) for tools/import_pretrained.py."""
    from mmseg.registry import MODELS
    backbone = MODELS.build(dict(type='RepVGG', arch='A0', out_indices=(3,)))
    state = {**backbone.state_dict(), 'linear.weight': torch.zeros(10, 1280), 'linear.bias': torch.zeros(10)}
    torch.save(state, tiny / 'RepVGG-A0-train.pth')
    return tiny / 'RepVGG-A0-train.pth'


@pytest.mark.parametrize('case', list(WRITE_CASES))
def test_a_write_refused_part_way_is_one_line_and_leaves_the_earlier_state(tiny, official_a0, tmp_path, case):
    """EFBIG in the middle of writing the result: exit 2, ``error: could not write FILE: File too large`` naming
    the result file, and the place the result goes to exactly as before: no partial out-dir, no temporary file
    (``test --out-dir`` with --force: the earlier predictions stay)."""
    tool, args, limit, prelude, named = WRITE_CASES[case]
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'pred').mkdir()
    (out / 'pred' / 'earlier.png').write_bytes(b'earlier predictions')
    before = snapshot(tmp_path)
    proc = run_limited(tool, [a.format(root=tiny, out=out, case=case.split()[0]) for a in args], limit, prelude)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert error_line(proc, tmp_path) == f'error: could not write {named.format(out=out)}: File too large'
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.rglob('*')) == ['earlier.png', 'out', 'pred']


@pytest.mark.parametrize('code', sorted(WRITE_ERRNOS))
def test_every_refused_write_names_its_file(tmp_path, code):
    """ENOSPC, EDQUOT, EFBIG, EROFS and EIO, raised by the file system inside a folder being built or a file being
    written: one ``WriteError`` naming the final path, nothing left behind."""
    def refuse(*args):
        raise OSError(code, os.strerror(code))

    with pytest.raises(WriteError, match=f'^could not write {tmp_path}/out/a.bin: {os.strerror(code)}$'):
        with atomic_dir(tmp_path / 'out') as tmp:
            write_file(tmp / 'a.txt', 'fine')
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(os, 'fsync', refuse)  # the moment a full disk is found on many file systems
                with atomic_write(tmp / 'a.bin') as handle:
                    handle.write(b'x')
    with pytest.raises(WriteError, match=f'^could not write {tmp_path}/b.bin: {os.strerror(code)}$'):
        with atomic_write(tmp_path / 'b.bin') as handle:
            handle.write(b'x')
            raise OSError(code, os.strerror(code))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 kB tmpfs at ``tmp_path / 'disk'`` (needs root: skipped where mounting is not allowed)."""
    disk = tmp_path / 'disk'
    disk.mkdir()
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f'cannot mount a tmpfs here: {mounted.stderr.decode().strip()}')
    try:
        yield disk
    finally:
        subprocess.run(['umount', str(disk)], check=True)


def test_a_full_disk_and_a_read_only_one_are_one_line(tiny, small_tmpfs):
    """ENOSPC for real (a 64 kB tmpfs) and EROFS (the same, remounted read-only): tools/convert_to_deploy.py and
    tools/test.py --out say so in one line and leave the disk as it was."""
    (small_tmpfs / 'earlier.txt').write_text('earlier\n')
    before = snapshot(small_tmpfs)
    proc = run_tool_in_process('convert_to_deploy.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--out-dir',
                               small_tmpfs / 'deploy', cwd=tiny)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert error_line(proc, tiny) == f'error: could not write {small_tmpfs}/deploy/deploy.pth: No space left on device'
    assert snapshot(small_tmpfs) == before and sorted(p.name for p in small_tmpfs.iterdir()) == ['earlier.txt']
    subprocess.run(['mount', '-o', 'remount,ro', str(small_tmpfs)], check=True)
    proc = run_tool_in_process('test.py', tiny / 'tiny.py', tiny / 'tiny.pth', '--out-dir', small_tmpfs / 'pred',
                               '--work-dir', tiny / 'work_ro', cwd=tiny)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert error_line(proc, tiny).startswith(f'error: could not write {small_tmpfs}/pred/')
    assert error_line(proc, tiny).endswith(': Read-only file system')
    assert snapshot(small_tmpfs) == before


def test_a_checkpoint_save_refused_part_way_keeps_the_previous_one(tiny, tmp_path):
    """tools/train.py: the save of iter_2.pth crosses a file-size limit. The run stops with one line, the only
    earlier checkpoint (``max_keep_ckpts=1``: mmengine would have deleted it first) and ``last_checkpoint`` are
    untouched, no temporary file is left, and ``--resume`` then goes on from iteration 1 to the end, where the old
    checkpoint is removed only after the new one is complete."""
    work = tmp_path / 'work'
    options = ['--cfg-options', 'default_hooks.checkpoint.interval=1', 'default_hooks.checkpoint.max_keep_ckpts=1']
    first = run_tool_in_process('train.py', tiny / 'tiny.py', '--work-dir', work, *options, 'train_cfg.max_iters=1',
                                cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    checkpoint = work / 'iter_1.pth'
    before = {name: hashlib.sha256((work / name).read_bytes()).hexdigest()
              for name in ('iter_1.pth', 'last_checkpoint')}
    limit = checkpoint.stat().st_size // 2
    proc = run_limited('train.py', [tiny / 'tiny.py', '--work-dir', work, '--resume', *options,
                                    'train_cfg.max_iters=2'], limit, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert error_line(proc, tmp_path) == f'error: could not write {work}/iter_2.pth: File too large'
    assert sorted(p.name for p in work.glob('*.pth*')) == ['iter_1.pth'] and not list(work.glob('.*'))
    assert {name: hashlib.sha256((work / name).read_bytes()).hexdigest() for name in before} == before
    resumed = run_tool_in_process('train.py', tiny / 'tiny.py', '--work-dir', work, '--resume', *options,
                                  'train_cfg.max_iters=2', cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed epoch: 0, iter: 1' in resumed.stdout + resumed.stderr
    assert sorted(p.name for p in work.glob('*.pth')) == ['iter_2.pth']
    assert (work / 'last_checkpoint').read_text() == str(work / 'iter_2.pth')
