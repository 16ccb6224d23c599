"""The data side: the procedural sample dataset, the Cityscapes preparation and the checking transforms."""
import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from cityscapesscripts.helpers.labels import id2label

from repseg.datasets import CheckSegLabels, LoadAnnotationsChecked, LoadImageFromFileChecked, make_sample_dataset
from repseg.datasets.cityscapes_prep import prepare_cityscapes
from repseg.datasets.sample_dataset import MARKER

NUM_TRAIN, NUM_VAL = 24, 8
NAME = re.compile(r'(leftImg8bit|gtFine)/(train|val)/([a-z]+)/\3_\d{6}_\d{6}_'
                  r'(leftImg8bit|gtFine_labelIds|gtFine_labelTrainIds|gtFine_color)\.png')


@pytest.fixture(scope='module')
def sample(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp('sample') / 'data'
    make_sample_dataset(out, NUM_TRAIN, NUM_VAL, size=(512, 256), seed=0)
    return out


def _pairs(root: Path, split: str):
    for img in sorted((root / 'leftImg8bit' / split).glob('*/*_leftImg8bit.png')):
        gt = root / 'gtFine' / split / img.parent.name / img.name.replace('_leftImg8bit', '_gtFine_labelTrainIds')
        yield cv2.imread(str(img))[..., ::-1], cv2.imread(str(gt), cv2.IMREAD_UNCHANGED)


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def _miou(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean IoU over the classes present in ``gt`` (255 ignored)."""
    keep = gt != 255
    pred, gt = pred[keep], gt[keep]
    return float(np.mean([((pred == c) & (gt == c)).sum() / ((pred == c) | (gt == c)).sum() for c in np.unique(gt)]))


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    for name, seed in (('a', 3), ('b', 3), ('c', 4)):
        make_sample_dataset(tmp_path / name, num_train=2, num_val=1, size=(256, 128), seed=seed)
    a, b, c = (_files(tmp_path / n) for n in 'abc')
    assert a == b
    assert a.keys() == c.keys() and a != c
    assert all(a[k] != c[k] for k in a if k.endswith('_leftImg8bit.png'))


def test_layout_and_naming(sample):
    files = [str(p.relative_to(sample)) for p in sample.rglob('*.png')]
    assert all(NAME.fullmatch(f) for f in files), [f for f in files if not NAME.fullmatch(f)][:3]
    for split, num in (('train', NUM_TRAIN), ('val', NUM_VAL)):
        assert len(list((sample / 'leftImg8bit' / split).glob('*/*_leftImg8bit.png'))) == num
        assert len(list((sample / 'gtFine' / split).glob('*/*_gtFine_labelTrainIds.png'))) == num
    assert json.loads((sample / MARKER).read_text())['counts'] == {'train': NUM_TRAIN, 'val': NUM_VAL}
    assert not [p for p in sample.parent.iterdir() if p.name.startswith('.')]  # no temporary folder left


def test_refuses_to_overwrite_other_folders_but_replaces_a_sample(tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'keep.txt').write_text('x')
    with pytest.raises(FileExistsError, match=r'other: not empty and not a sample dataset') as err:
        make_sample_dataset(other, 1, 1, size=(128, 64))
    assert '\n' not in str(err.value) and (other / 'keep.txt').read_text() == 'x'
    out = tmp_path / 'sample'
    make_sample_dataset(out, 3, 1, size=(128, 64))
    make_sample_dataset(out, 1, 1, size=(128, 64))
    assert len(list(out.glob('leftImg8bit/train/*/*.png'))) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ['other', 'sample']


def test_cityscapes_dataset_reads_it(sample):
    from mmseg.datasets import CityscapesDataset
    pipeline = [dict(type='LoadImageFromFileChecked'), dict(type='LoadAnnotationsChecked'),
                dict(type='CheckSegLabels', num_classes=19), dict(type='PackSegInputs')]
    ds = CityscapesDataset(data_root=str(sample), data_prefix=dict(img_path='leftImg8bit/train',
                                                                   seg_map_path='gtFine/train'), pipeline=pipeline)
    assert len(ds) == NUM_TRAIN
    item = ds[0]
    gt = item['data_samples'].gt_sem_seg.data
    assert tuple(item['inputs'].shape) == (3, 256, 512) and tuple(gt.shape) == (1, 256, 512)
    assert set(gt.unique().tolist()) <= set(range(19)) | {255}
    stock = CityscapesDataset(data_root=str(sample), data_prefix=dict(img_path='leftImg8bit/val',
                                                                      seg_map_path='gtFine/val'),
                              pipeline=[dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
                                        dict(type='CheckSegLabels', num_classes=19), dict(type='PackSegInputs')])
    assert len(stock) == NUM_VAL and stock[0]['inputs'].shape[0] == 3


def test_label_ids_match_train_ids(sample):
    lut = np.full(256, 255, np.uint8)
    for i, lab in id2label.items():
        if 0 <= i < 256 and 0 <= lab.trainId < 19:
            lut[i] = lab.trainId
    for ids_file in sorted(sample.glob('gtFine/*/*/*_gtFine_labelIds.png')):
        ids = cv2.imread(str(ids_file), cv2.IMREAD_UNCHANGED)
        train = cv2.imread(str(ids_file).replace('_labelIds', '_labelTrainIds'), cv2.IMREAD_UNCHANGED)
        assert ids.ndim == 2 and ids.max() <= 33
        np.testing.assert_array_equal(lut[ids], train)


def test_classes_varied_and_balanced(sample):
    maps = np.stack([lab for _, lab in _pairs(sample, 'train')])
    images_with = np.array([(maps == c).any(axis=(1, 2)).sum() for c in range(19)])
    assert (images_with >= 3).sum() >= 6, images_with
    counts = np.bincount(maps.ravel(), minlength=256)[:19]
    assert counts.max() / counts.sum() < 0.6, counts / counts.sum()


def test_colour_alone_is_informative_but_far_from_enough(sample):
    """The best per-pixel colour-only classifier (a 16^3 colour histogram per class) fitted on train must beat the
    majority class on val, yet stay far from perfect: the task needs shape and context, as a segmenter learns."""
    def bins(img):
        q = img.reshape(-1, 3).astype(np.int64) // 16
        return q[:, 0] * 256 + q[:, 1] * 16 + q[:, 2]

    hist = np.zeros((19, 4096))
    for img, lab in _pairs(sample, 'train'):
        keep = lab.ravel() != 255
        np.add.at(hist, (lab.ravel()[keep], bins(img)[keep]), 1)
    table = hist.argmax(0)
    val = list(_pairs(sample, 'val'))
    gt = np.concatenate([lab.ravel() for _, lab in val])
    colour = _miou(np.concatenate([table[bins(img)] for img, _ in val]), gt)
    majority = _miou(np.full_like(gt, hist.sum(1).argmax()), gt)
    assert 2 * majority < colour < 0.5, (majority, colour)


def test_check_seg_labels_names_file_and_values(shared_data, tmp_path):
    """labelIds (0-33) given where trainIds are expected: one line naming the file and the values."""
    gt_dir = shared_data / 'cityscapes_sample' / 'gtFine' / 'val' / 'frankfurt'
    wrong = str(gt_dir / 'frankfurt_000000_000294_gtFine_labelIds.png')
    results = LoadAnnotationsChecked()(dict(seg_map_path=wrong, reduce_zero_label=False, seg_fields=[]))
    with pytest.raises(ValueError) as err:
        CheckSegLabels(num_classes=19)(results)
    msg = str(err.value)
    assert '\n' not in msg and msg.startswith(wrong) and re.search(r'\[(\d+, )*(2[0-9]|3[0-3])[\],]', msg)
    assert 'outside 0-18 and 255' in msg
    right = str(gt_dir / 'frankfurt_000000_000294_gtFine_labelTrainIds.png')
    results = LoadAnnotationsChecked()(dict(seg_map_path=right, reduce_zero_label=False, seg_fields=[]))
    assert CheckSegLabels(num_classes=19)(results) is results
    colour = dict(gt_seg_map=np.zeros((4, 4, 3), np.uint8), seg_map_path='x_gtFine_color.png')
    with pytest.raises(ValueError, match=r'^x_gtFine_color\.png: label map of shape \(4, 4, 3\)'):
        CheckSegLabels(num_classes=19)(colour)


def test_loaders_name_missing_and_corrupt_files(tmp_path):
    bad = tmp_path / 'bad.png'
    bad.write_bytes(b'\x89PNG not really')
    empty = tmp_path / 'empty.png'
    empty.write_bytes(b'')
    for path, kind in ((tmp_path / 'missing.png', FileNotFoundError), (bad, ValueError), (empty, ValueError)):
        with pytest.raises(kind) as err:
            LoadImageFromFileChecked()(dict(img_path=str(path)))
        assert str(err.value).startswith(f'{path}: ') and '\n' not in str(err.value)
        with pytest.raises(kind) as err:
            LoadAnnotationsChecked()(dict(seg_map_path=str(path), reduce_zero_label=False, seg_fields=[]))
        assert str(err.value).startswith(f'{path}: ') and '\n' not in str(err.value)


def _fake_cityscapes(root: Path) -> list:
    """Two frames with a few polygons each, in the Cityscapes layout and json format."""
    objects = [dict(label='sky', polygon=[[0, 0], [63, 0], [63, 9], [0, 9]]),
               dict(label='road', polygon=[[0, 20], [63, 20], [63, 31], [0, 31]]),
               dict(label='car', polygon=[[10, 14], [30, 14], [30, 25], [10, 25]]),
               dict(label='cargroup', polygon=[[40, 14], [50, 14], [50, 18], [40, 18]]),
               dict(label='license plate', polygon=[[15, 20], [20, 20], [20, 22], [15, 22]]),
               dict(label='rectification border', polygon=[[0, 30], [63, 30], [63, 31], [0, 31]])]
    jsons = []
    for split in ('train', 'val'):
        (root / 'leftImg8bit' / split / 'town').mkdir(parents=True)
        path = root / 'gtFine' / split / 'town' / 'town_000000_000019_gtFine_polygons.json'
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(dict(imgHeight=32, imgWidth=64, objects=objects)))
        jsons.append(path)
    return jsons


def test_prepare_cityscapes_writes_train_ids(tmp_path):
    jsons = _fake_cityscapes(tmp_path)
    assert prepare_cityscapes(tmp_path, nproc=2).converted == 2
    out = cv2.imread(str(jsons[0]).replace('_polygons.json', '_labelTrainIds.png'), cv2.IMREAD_UNCHANGED)
    assert out.shape == (32, 64) and out.dtype == np.uint8
    assert out[5, 5] == 10 and out[12, 5] == 255  # sky, unlabelled background
    assert out[22, 5] == 0 and out[31, 5] == 255  # road, rectification border drawn over it
    assert out[20, 20] == 13 and out[21, 17] == 13  # car; the license plate (id -1) is not drawn
    assert out[16, 45] == 13  # 'cargroup' is read as car
    assert set(np.unique(out)) == {0, 10, 13, 255}
    again = prepare_cityscapes(tmp_path, nproc=1)
    assert (again.converted, again.skipped) == (0, 2)
    assert prepare_cityscapes(tmp_path, nproc=1, force=True).converted == 2
    assert not list(tmp_path.rglob('*.tmp-*'))


def test_prepare_cityscapes_names_what_is_missing(tmp_path):
    _fake_cityscapes(tmp_path)
    shutil.rmtree(tmp_path / 'gtFine' / 'val')
    with pytest.raises(FileNotFoundError) as err:
        prepare_cityscapes(tmp_path)
    assert str(err.value) == (f'{tmp_path}/gtFine/val: missing; expected the Cityscapes layout '
                              'DATA_ROOT/{leftImg8bit,gtFine}/{train,val}/<city>/ (see data/README.md)')
