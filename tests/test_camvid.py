"""CamVid: the SegNet-layout dataset, its layout and label checks, and the configs/camvid/ models."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import REPO, SHARED_DATA, run_tool_in_process
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from repseg.apis import sync_bn_to_bn
from repseg.datasets import CAMVID_CLASSES, CAMVID_PALETTE, CamVidDataset, camvid_pairs
from repseg.models import custom_l2

CAMVID = SHARED_DATA / 'camvid'
A0 = REPO / 'configs' / 'camvid' / 'pspnet_repvgg_a0_camvid.py'
R18 = REPO / 'configs' / 'camvid' / 'pspnet_r18-d8_camvid.py'
CHECKED = [dict(type='LoadImageFromFileChecked'), dict(type='LoadCamVidAnnotations'), dict(type='PackSegInputs')]
STOCK = [dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')]


@pytest.fixture(scope='module')
def camvid() -> Path:
    if not (CAMVID / 'val').is_dir():
        pytest.skip(f'shared CamVid not found at {CAMVID}')
    return CAMVID


def _link_split(src: Path, dst: Path, split: str, num: int) -> list:
    """Symlink the first ``num`` images of ``split`` and their labels into the SegNet layout under ``dst``."""
    names = sorted(p.stem for p in (src / split).iterdir())[:num]
    for folder in (split, f'{split}annot'):
        (dst / folder).mkdir(parents=True, exist_ok=True)
    for name in names:
        image = next((src / split).glob(f'{name}.*'))
        (dst / split / image.name).symlink_to(image)
        (dst / f'{split}annot' / f'{name}.png').symlink_to(src / f'{split}annot' / f'{name}.png')
    return names


def _dataset(root: Path, split: str = 'val', pipeline=CHECKED) -> CamVidDataset:
    return CamVidDataset(data_root=str(root), data_prefix=dict(img_path=split, seg_map_path=f'{split}annot'),
                         pipeline=pipeline)


def _write_split(root: Path, split: str, labels: dict, suffix: str = '.png') -> None:
    """A tiny synthetic split: one 6x8 image per entry of ``labels`` (name -> label map)."""
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / f'{split}annot').mkdir(parents=True, exist_ok=True)
    for name, label in labels.items():
        cv2.imwrite(str(root / split / f'{name}{suffix}'), np.full((*label.shape[:2], 3), 100, np.uint8))
        cv2.imwrite(str(root / f'{split}annot' / f'{name}.png'), label)


def _one_line(err: pytest.ExceptionInfo, starts: str) -> str:
    msg = str(err.value)
    assert '\n' not in msg and msg.startswith(starts), msg
    return msg


def test_shared_camvid_splits_are_complete(camvid):
    for split, num in (('train', 367), ('val', 101)):
        pairs = camvid_pairs(str(camvid / split), str(camvid / f'{split}annot'))
        assert len(pairs) == num
        assert all(Path(img).stem == Path(seg).stem for img, seg in pairs)


@pytest.mark.parametrize('pipeline', [CHECKED, STOCK], ids=['checked', 'stock'])
def test_reads_real_camvid_and_ignores_unlabelled(camvid, tmp_path, pipeline):
    """The images and labels as stored, with label 11 (unlabelled) and only it turned into 255, also through
    MMSegmentation's stock LoadAnnotations (the dataset's label_map), so no pipeline can train on it as a class."""
    names = _link_split(camvid, tmp_path, 'val', 2)
    ds = _dataset(tmp_path, 'val', pipeline)
    assert len(ds) == 2 and ds.metainfo['classes'] == CAMVID_CLASSES and ds.metainfo['palette'] == CAMVID_PALETTE
    for i, name in enumerate(names):
        item = ds[i]
        raw = cv2.imread(str(camvid / 'valannot' / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert (raw == 11).sum() > 0 and raw.max() == 11
        gt = item['data_samples'].gt_sem_seg.data[0].numpy()
        np.testing.assert_array_equal(gt, np.where(raw == 11, 255, raw))
        image = cv2.imread(str(camvid / 'val' / f'{name}.jpg'))
        np.testing.assert_array_equal(item['inputs'].numpy().transpose(1, 2, 0), image)
        assert image.shape == (360, 480, 3)


def test_png_and_jpg_images_are_both_read(camvid, tmp_path):
    names = _link_split(camvid, tmp_path, 'train', 3)
    jpg = tmp_path / 'train' / f'{names[1]}.jpg'
    pixels = cv2.imread(str(jpg))
    jpg.unlink()
    cv2.imwrite(str(tmp_path / 'train' / f'{names[1]}.png'), pixels)
    ds = _dataset(tmp_path, 'train')
    assert [Path(ds.get_data_info(i)['img_path']).suffix for i in range(3)] == ['.jpg', '.png', '.jpg']
    np.testing.assert_array_equal(ds[1]['inputs'].numpy().transpose(1, 2, 0), pixels)


def test_missing_split_folders_are_named(tmp_path):
    _write_split(tmp_path, 'train', {'a': np.zeros((6, 8), np.uint8)})
    with pytest.raises(FileNotFoundError) as err:
        _dataset(tmp_path, 'val')
    assert 'missing image folder; expected the CamVid layout' in _one_line(err, f'{tmp_path / "val"}: ')
    (tmp_path / 'val').mkdir()
    with pytest.raises(FileNotFoundError) as err:
        _dataset(tmp_path, 'val')
    assert 'missing label folder' in _one_line(err, f'{tmp_path / "valannot"}: ')
    (tmp_path / 'valannot').mkdir()
    with pytest.raises(FileNotFoundError) as err:
        _dataset(tmp_path, 'val')
    assert 'no images (*.png, *.jpg)' in _one_line(err, f'{tmp_path / "val"}: ')


def test_image_without_label_label_without_image_and_duplicates_are_named(tmp_path):
    label = np.zeros((6, 8), np.uint8)
    _write_split(tmp_path, 'val', {'a': label, 'b': label, 'c': label}, suffix='.jpg')
    (tmp_path / 'valannot' / 'b.png').unlink()
    with pytest.raises(FileNotFoundError) as err:
        _dataset(tmp_path)
    assert 'image without a label' in _one_line(err, f'{tmp_path / "val" / "b.jpg"}: ')
    (tmp_path / 'val' / 'b.jpg').unlink()
    (tmp_path / 'val' / 'c.jpg').unlink()
    with pytest.raises(FileNotFoundError) as err:
        _dataset(tmp_path)
    assert 'label without an image' in _one_line(err, f'{tmp_path / "valannot" / "c.png"}: ')
    (tmp_path / 'valannot' / 'c.png').unlink()
    cv2.imwrite(str(tmp_path / 'val' / 'a.png'), np.zeros((6, 8, 3), np.uint8))
    with pytest.raises(ValueError) as err:
        _dataset(tmp_path)
    assert 'a second image named a (also a.jpg)' in _one_line(err, f'{tmp_path / "val" / "a.png"}: ')


def test_label_values_outside_0_11_and_colour_labels_are_named(tmp_path):
    good = np.arange(48, dtype=np.uint8).reshape(6, 8) % 12
    bad = good.copy()
    bad[2, 3] = 12
    _write_split(tmp_path, 'val', {'a_good': good, 'b_bad': bad})
    ds = _dataset(tmp_path)
    gt = ds[0]['data_samples'].gt_sem_seg.data[0].numpy()
    np.testing.assert_array_equal(gt, np.where(good == 11, 255, good))
    with pytest.raises(ValueError) as err:
        ds[1]
    msg = _one_line(err, f'{tmp_path / "valannot" / "b_bad.png"}: ')
    assert 'label values [12] outside 0-11' in msg
    cv2.imwrite(str(tmp_path / 'valannot' / 'b_bad.png'), np.zeros((6, 8, 3), np.uint8) + 40)
    with pytest.raises(ValueError) as err:
        ds[1]
    assert 'label map of shape (6, 8, 3)' in _one_line(err, f'{tmp_path / "valannot" / "b_bad.png"}: ')


def test_train_tool_reports_a_layout_error_in_one_line(tmp_path):
    label = np.zeros((6, 8), np.uint8)
    for split in ('train', 'val'):
        _write_split(tmp_path / 'data', split, {'a': label, 'b': label})
    (tmp_path / 'data' / 'trainannot' / 'b.png').unlink()
    # the script in this process (conftest.run_tool_in_process: no new interpreter; test_train_test starts it as one)
    result = run_tool_in_process(
        'train.py', A0, '--work-dir', tmp_path / 'wd',
        '--cfg-options', f'train_dataloader.dataset.data_root={tmp_path / "data"}',
        f'val_dataloader.dataset.data_root={tmp_path / "data"}', cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f'error: {tmp_path / "data" / "train" / "b.png"}: image without a label')


def test_missing_data_root_names_the_camvid_layout(tmp_path):
    from repseg.engine.checks import check_data_roots
    cfg = Config.fromfile(str(A0))
    cfg.train_dataloader.dataset.data_root = f'{tmp_path}/camvid/'
    with pytest.raises(FileNotFoundError) as err:
        check_data_roots(cfg, ['train_dataloader'])
    assert str(err.value) == (f'{tmp_path}/camvid/train: missing (train_dataloader.dataset.data_prefix.img_path); '
                              f'expected the SegNet CamVid layout {tmp_path}/camvid/{{train,val,test}}/ with '
                              f'{tmp_path}/camvid/{{train,val,test}}annot/ (see data/README.md)')


def test_inference_pipeline_drops_the_camvid_label_loader():
    from repseg.apis import inference_pipeline
    steps = [t['type'] for t in inference_pipeline(Config.fromfile(str(A0)))]
    assert steps == ['LoadImageFromNDArray', 'PackSegInputs']


def test_configs_share_the_recipe_and_read_camvid():
    a0, r18 = Config.fromfile(str(A0)), Config.fromfile(str(R18))
    for cfg in (a0, r18):
        train, val = cfg.train_dataloader.dataset, cfg.val_dataloader.dataset
        assert (train.type, train.data_root, dict(train.data_prefix)) == (
            'CamVidDataset', 'data/camvid/', dict(img_path='train', seg_map_path='trainannot'))
        assert (val.type, val.data_root, dict(val.data_prefix)) == (
            'CamVidDataset', 'data/camvid/', dict(img_path='val', seg_map_path='valannot'))
        assert [t.type for t in val.pipeline] == ['LoadImageFromFileChecked', 'LoadCamVidAnnotations',
                                                  'PackSegInputs']  # the native 480x360 image, no resize
        assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 11
        assert cfg.model.test_cfg.mode == 'whole' and cfg.model.pretrained is None
        assert cfg.model.backbone.get('init_cfg') is None  # from scratch: nothing to download
    for key in ('train_dataloader', 'val_dataloader', 'optim_wrapper', 'param_scheduler', 'train_cfg',
                'default_hooks', 'randomness'):
        assert a0[key] == r18[key], key
    assert a0.model.data_preprocessor == r18.model.data_preprocessor
    assert (a0.model.backbone.type, a0.model.backbone.arch) == ('RepVGG', 'A0')
    assert (r18.model.backbone.type, r18.model.backbone.depth) == ('ResNetV1c', 18)
    assert tuple(r18.model.backbone.dilations) == (1, 1, 2, 4) and tuple(r18.model.backbone.strides) == (1, 2, 1, 1)


# the quantization remedies of docs/quantization.md: each config changes exactly one thing of the A0 config
REMEDIES = {
    'pspnet_repvgg_a0_camvid_custwd.py': ('optim_wrapper', dict(constructor='CustomL2OptimWrapperConstructor')),
    'pspnet_repvgg_a0_camvid_custwd_identity.py': ('optim_wrapper', dict(
        constructor='CustomL2OptimWrapperConstructor', paramwise_cfg=dict(custom_l2=dict(identity=True)))),
    'pspnet_qarepvgg_a0_camvid.py': ('model', None),
}


@pytest.mark.parametrize('name', sorted(REMEDIES))
def test_remedy_configs_change_only_their_remedy(name):
    a0, cfg = Config.fromfile(str(A0)).to_dict(), Config.fromfile(str(A0.parent / name)).to_dict()
    key, added = REMEDIES[name]
    assert set(cfg) == set(a0) and all(cfg[k] == a0[k] for k in a0 if k != key), name
    if key == 'model':
        assert cfg['model']['backbone'].pop('block') == 'qarepvgg' and cfg['model'] == a0['model']
        return
    assert cfg[key] == {**a0[key], **added}
    torch.manual_seed(0)
    model = MODELS.build(sync_bn_to_bn(cfg['model']))
    build_optim_wrapper(model, cfg['optim_wrapper'])  # the constructor adds the term to the loss
    model.eval()  # batch 1: PSP's pooled BNs need running statistics
    label = torch.randint(0, 11, (1, 64, 64), generator=torch.Generator().manual_seed(0))
    sample = SegDataSample(metainfo=dict(img_shape=(64, 64), pad_shape=(64, 64)), gt_sem_seg=PixelData(data=label))
    with torch.no_grad():
        term = model(torch.randn(1, 3, 64, 64), [sample], mode='loss')['loss_custom_l2']
        expected = {flag: 1e-4 * 0.5 * custom_l2(model, identity=flag) for flag in (False, True)}
    assert term == expected['identity' in name] != expected['identity' not in name]


@pytest.mark.parametrize('config', [A0, R18], ids=['repvgg_a0', 'r18-d8'])
def test_config_builds_trains_and_predicts_on_a_tiny_input(config):
    torch.manual_seed(0)
    cfg = Config.fromfile(str(config))
    model = MODELS.build(sync_bn_to_bn(cfg.model))  # a ConfigDict: test_cfg.mode is read as an attribute
    model.init_weights()
    gen = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.randint(0, 256, (3, 64, 64), generator=gen, dtype=torch.uint8))
        label = torch.randint(0, 11, (1, 64, 64), generator=gen)
        label[:, :8] = 255
        sample = SegDataSample(metainfo=dict(img_shape=(64, 64), ori_shape=(64, 64), pad_shape=(64, 64)))
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    data = model.data_preprocessor(dict(inputs=inputs, data_samples=samples), training=False)
    optim = torch.optim.SGD(model.parameters(), lr=cfg.optim_wrapper.optimizer.lr, momentum=0.9)
    model.train()
    losses = []
    for _ in range(3):
        loss, _ = model.parse_losses(model.loss(data['inputs'], data['data_samples']))
        optim.zero_grad()
        loss.backward()
        optim.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses)) and losses[-1] < losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model.test_step(dict(inputs=[inputs[0][:, :45, :60]],
                                   data_samples=[SegDataSample(metainfo=dict(img_shape=(45, 60), ori_shape=(45, 60)))]))
    assert out[0].seg_logits.data.shape == (11, 45, 60)
    pred = out[0].pred_sem_seg.data
    assert pred.shape == (1, 45, 60) and 0 <= pred.min() and pred.max() < 11
