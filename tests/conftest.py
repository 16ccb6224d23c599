import contextlib
import io
import os
import runpy
import sys
from pathlib import Path
from types import SimpleNamespace

# The CPU suite runs the same on a machine with GPUs: CUDA is hidden before anything initializes it (mmengine picks its
# device when imported), from this process and the ones it starts. `make test-gpu` (REPSEG_TEST_GPU=1) runs the tests
# marked `gpu` instead, with CUDA visible.
GPU_RUN = os.environ.get('REPSEG_TEST_GPU') == '1'
if not GPU_RUN:
    os.environ['CUDA_VISIBLE_DEVICES'] = ''

# isort: split
import cv2
import numpy as np
import pytest
import torch

import repseg  # noqa: F401  (first: the mmcv-lite compat layer must precede any mmseg import)

# isort: split
import mmengine.config.config as mmengine_config
from mmengine.config import Config
from mmengine.structures import PixelData
from mmengine.utils import ManagerMixin
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

from repseg.apis import sync_bn_to_bn
from repseg.datasets import make_sample_dataset
from repseg.models.backbones import ARCH_SETTINGS, ReparamBlock, SEBlock, block_specs

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / 'shared' / 'data'
CITYSCAPES_SAMPLE = SHARED_DATA / 'cityscapes_sample'
DEMO_FRAME = SHARED_DATA / 'cityscapes_demo_1024x512.png'
FRAME = CITYSCAPES_SAMPLE / 'leftImg8bit' / 'val' / 'frankfurt' / 'frankfurt_000000_000294_leftImg8bit.png'
LABELS = CITYSCAPES_SAMPLE / 'gtFine' / 'val' / 'frankfurt' / 'frankfurt_000000_000294_gtFine_labelTrainIds.png'
SAMPLE_CONFIG = REPO / 'configs' / 'pspnet_repvgg_a0_sample.py'
if DEMO_FRAME.is_file():  # int8 calibration crops from a real street frame, as a user's would be
    os.environ.setdefault('REPSEG_STREET_FRAME', str(DEMO_FRAME))

torch.set_num_threads(min(2, os.cpu_count() or 1))
register_all_modules(init_default_scope=True)  # as MMSegmentation's own tools do


def pytest_collection_modifyitems(config, items) -> None:
    """A CPU run skips the GPU suite; a GPU run (REPSEG_TEST_GPU=1) runs only the GPU suite, as CUDA is visible."""
    for item in items:
        gpu = item.get_closest_marker('gpu') is not None
        if gpu != GPU_RUN:
            item.add_marker(pytest.mark.skip(reason='GPU suite: run `make test-gpu` on a machine with NVIDIA GPUs'
                                             if gpu else 'CPU suite: run `make test` (CUDA hidden)'))


def _memoize_external_config_lookup() -> None:
    """mmengine resolves every ``mmseg::`` base of a config by parsing all of MMSegmentation's 159 metafiles (about
    0.6 s a base, 1.3 s a ``Config.fromfile`` of the sample config), and fails over to the base path by a
    ValueError. The answer depends only on the installed package: remember it (the error included) per process."""
    lookup, answers = mmengine_config._get_external_cfg_path, {}

    def remembered(package_path: str, cfg_file: str) -> str:
        key = (package_path, cfg_file)
        if key not in answers:
            try:
                answers[key] = (lookup(package_path, cfg_file), None)
            except ValueError as err:
                answers[key] = (None, err.args)
        path, error = answers[key]
        if error is not None:
            raise ValueError(*error)
        return path

    mmengine_config._get_external_cfg_path = remembered


_memoize_external_config_lookup()


def randomize_bn(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BN non-trivial running statistics and affine parameters, so that fusion errors show."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) * 1.0 + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model


def slim_arch(arch: str, divisor: int = 4) -> dict:
    """A published arch at 1/divisor of its widths: the same depth, grouped layers and SE / post-SE, hence the same
    blocks (stride, dilation, groups, identity branch or not) with fewer channels, built and fused in a fraction of
    the time. Exactness checks run on it for every arch; the full widths are checked on the meta device and for
    one representative."""
    settings = dict(ARCH_SETTINGS[arch])
    settings['width_factor'] = tuple(w / divisor for w in settings['width_factor'])
    return settings


def block_layout(model: torch.nn.Module) -> list:
    """What makes a RepVGG's structure, channel counts aside: per block (train form) its stride, dilation, groups,
    whether it has an identity branch, an SE before the ReLU, an SE after it."""
    return [(b.stride, b.dilation, b.groups, b.rbr_identity is not None, isinstance(b.se, SEBlock),
             isinstance(b.post_se, SEBlock)) for b in model.modules() if isinstance(b, ReparamBlock)]


def published_layout(arch: str, strides=(2, 2, 2, 2, 2), dilations=(1, 1, 1, 1, 1), fast: bool = False) -> list:
    """``block_layout`` of the published ``arch`` at its full widths, from its block table (no model built)."""
    return [(s.stride, s.dilation, s.groups, s.in_channels == s.out_channels and s.stride == 1, s.use_se,
             s.use_post_se) for stage in block_specs(ARCH_SETTINGS[arch], 3, strides, dilations, fast) for s in stage]


@pytest.fixture
def shared_data() -> Path:
    if not CITYSCAPES_SAMPLE.is_dir():
        pytest.skip(f'shared test data not found at {SHARED_DATA}')
    return SHARED_DATA


def train_sample_checkpoint(path: Path, steps: int = 3) -> Path:
    """PSPNet-RepVGG-A0 from the sample config, a few SGD steps in train mode on the real 256x128 frame and its
    mirror, saved as an mmengine-style checkpoint: BN statistics and weights have moved away from their init."""
    torch.manual_seed(0)
    cfg = Config.fromfile(str(SAMPLE_CONFIG))
    model = MODELS.build(sync_bn_to_bn(cfg.model.to_dict()))
    model.init_weights()
    model.train()
    img, lab = cv2.imread(str(FRAME)), cv2.imread(str(LABELS), cv2.IMREAD_UNCHANGED)
    inputs, samples = [], []
    for i, l in ((img, lab), (img[:, ::-1], lab[:, ::-1])):
        inputs.append(torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))))
        sample = SegDataSample(metainfo=dict(img_shape=l.shape, ori_shape=l.shape, pad_shape=l.shape))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(np.ascontiguousarray(l))[None].long())
        samples.append(sample)
    # training=False: normalize without padding to the 256x256 training crop (cheaper, same statistics)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=False)
    optim = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(steps):
        loss, _ = model.parse_losses(model.loss(data['inputs'], data['data_samples']))
        optim.zero_grad()
        loss.backward()
        optim.step()
    torch.save(dict(meta=dict(iter=steps, seed=0), state_dict=model.state_dict()), path)
    return path


@pytest.fixture(scope='session')
def sample_checkpoint(tmp_path_factory) -> Path:
    """One trained sample checkpoint shared by the deploy, inference and ONNX tests."""
    if not FRAME.is_file():
        pytest.skip(f'shared test data not found at {CITYSCAPES_SAMPLE}')
    return train_sample_checkpoint(tmp_path_factory.mktemp('train') / 'iter_3.pth')


#: A RepVGG small enough for seconds: 7 blocks (stage 2 has an identity branch), 16-256 channels.
TINY = """_base_ = ['{base}']
data_root = '{data}/'
model = dict(backbone=dict(arch=dict(_delete_=True, num_blocks=(1, 2, 2, 1), width_factor=(0.25, 0.25, 0.25, 0.5))),
             decode_head=dict(in_channels=256, channels=32), auxiliary_head=dict(in_channels=64, channels=16))
train_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
val_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
"""
TINY_LAYERS = 7 + 6  # backbone blocks + PSP (4 pyramid convs, bottleneck, classifier)


def make_tiny(root: Path) -> tuple:
    """Generated scenes (4 train, 2 val, 128x64), the tiny config, and a train-form checkpoint with non-trivial BN."""
    make_sample_dataset(root / 'data', num_train=4, num_val=2, size=(128, 64), seed=0)
    config = root / 'tiny.py'
    config.write_text(TINY.format(base=SAMPLE_CONFIG, data=root / 'data'))
    torch.manual_seed(0)
    model = MODELS.build(sync_bn_to_bn(Config.fromfile(str(config)).model.to_dict()))
    model.init_weights()
    randomize_bn(model)
    checkpoint = root / 'tiny.pth'
    torch.save(dict(meta=dict(iter=0), state_dict=model.state_dict()), checkpoint)
    return config, checkpoint


def run_tool_in_process(tool: str, *args, cwd: Path, syspath: tuple = ()) -> SimpleNamespace:
    """``python tools/<tool> ARGS`` in this process: the script itself runs as ``__main__`` (its argument parsing
    and one-line error handling included) with ``cwd`` as working directory and ``syspath`` in front of sys.path;
    only the interpreter start and the imports (about 5 s a process) are saved. As in a fresh process, mmengine's
    global instances (loggers, message hubs, visualizers, the default scope) start empty; they, sys.argv, sys.path
    and os.environ are restored afterwards. Returns ``returncode`` (the SystemExit code, 0 when the script returns),
    ``stdout`` and ``stderr`` as a subprocess would; an exception other than SystemExit propagates, as its
    traceback would end the tool."""
    managers, todo = [], [ManagerMixin]
    while todo:
        managers.append(todo.pop())
        todo.extend(managers[-1].__subclasses__())
    instances = {cls: cls._instance_dict.copy() for cls in managers}
    for cls in managers:
        cls._instance_dict.clear()
    out, err = io.StringIO(), io.StringIO()
    argv, path, environ = sys.argv, list(sys.path), dict(os.environ)
    sys.argv = [str(REPO / 'tools' / tool), *map(str, args)]
    sys.path[:0] = map(str, syspath)
    code = 0
    try:
        with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(sys.argv[0], run_name='__main__')
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
                if not isinstance(exit_.code, (int, type(None))):
                    print(exit_.code, file=sys.stderr)
    finally:
        sys.argv, sys.path[:] = argv, path
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
        for cls, saved in instances.items():
            cls._instance_dict.clear()
            cls._instance_dict.update(saved)
    return SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def tools_test_metrics(config: Path, checkpoint: Path, work_dir: Path) -> tuple:
    """(mIoU, mAcc, aAcc) that tools/test.py prints for ``config`` / ``checkpoint``."""
    import re
    proc = run_tool_in_process('test.py', config, checkpoint, '--work-dir', work_dir, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = re.findall(r'aAcc: ([\d.]+)\s+mIoU: ([\d.]+)\s+mAcc: ([\d.]+)', proc.stdout + proc.stderr)
    assert found, (proc.stdout + proc.stderr)[-2000:]
    a_acc, miou, m_acc = map(float, found[-1])
    return miou, m_acc, a_acc
