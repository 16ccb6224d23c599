"""An ``EncoderDecoder`` whose backbone + decode head is one OpenVINO network (an int8 or bf16 folder's model), so
that MMSegmentation's tools and ``repseg.apis`` run it unchanged. The IR travels inside a normal checkpoint as two
uint8 buffers whose sizes and SHA-256 the config records: it loads like any weights, and another model's is refused."""
import copy
import hashlib
import logging
from typing import Any, Callable, Dict, List, Optional

import torch
from mmengine.config import ConfigDict
from mmengine.logging import print_log
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from torch import Tensor, nn

from repseg.runtime import FOLDER_FORMS
from repseg.runtime.openvino_runtime import OpenVINONetwork, read_ir
from repseg.utils.machine import cpu_flags, describe_flags

SEGMENTOR_TYPE = 'OpenVINOEncoderDecoder'


def ir_digest(xml: bytes, weights: bytes) -> str:
    """SHA-256 over the xml and bin bytes (what the config records to pair it with its checkpoint)."""
    return hashlib.sha256(hashlib.sha256(xml).digest() + hashlib.sha256(weights).digest()).hexdigest()


def folder_network(model: Any, precision: str) -> OpenVINONetwork:
    """A folder's IR compiled in its precision (int8 with f32 float layers: OpenVINO 2026.4 needs it on AMX)."""
    return OpenVINONetwork(model, precision='bf16' if precision == 'bf16' else 'f32')


class IRNetwork(nn.Module):
    """The IR as two uint8 buffers, compiled on first call; ``use`` plugs in a callable (candidates, unwritten)."""

    def __init__(self, xml_bytes: int = 0, bin_bytes: int = 0, sha256: str = '', precision: str = 'int8',
                 out_channels: int = 0):
        super().__init__()
        self.register_buffer('xml', torch.zeros(int(xml_bytes), dtype=torch.uint8))
        self.register_buffer('weights', torch.zeros(int(bin_bytes), dtype=torch.uint8))
        self.sha256, self.precision, self.out_channels = sha256, precision, int(out_channels)
        self._network: Optional[Callable[[Tensor], Tensor]] = None

    def use(self, network: Optional[Callable[[Tensor], Tensor]]) -> None:
        self._network = network

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._network = None
        if any(self.xml[:64].tolist()):
            self._check_ir()  # at load time: a config that does not describe its IR evaluates nothing

    def _check_ir(self) -> Any:
        """The loaded IR as an ``openvino.Model``; refused unless its SHA-256 and classes are the config's."""
        xml, weights = self.xml.cpu().numpy().tobytes(), self.weights.cpu().numpy().tobytes()
        if not any(xml[:64]):
            raise ValueError(f'{SEGMENTOR_TYPE}: no IR loaded; load the checkpoint written with this config '
                             f'(DIR/int8.pth beside DIR/int8_config.py)')
        digest = ir_digest(xml, weights)
        if self.sha256 and digest != self.sha256:
            raise ValueError(f'{SEGMENTOR_TYPE}: the checkpoint\'s IR (sha256 {digest[:12]}...) is not the one '
                             f'this config was written for ({self.sha256[:12]}...); use the int8.pth written '
                             f'with this int8_config.py')
        model = read_ir(xml, weights)
        channels = model.outputs[0].get_partial_shape()[1]
        if self.out_channels and channels.is_static and channels.get_length() != self.out_channels:
            raise ValueError(f'{SEGMENTOR_TYPE}: the config says {self.out_channels} output channels (model.num_classes'
                             f' / out_channels), its IR has {channels.get_length()}; use the int8_config.py written '
                             f'with this int8.pth, unedited')
        return model

    def forward(self, x: Tensor) -> Tensor:
        if self._network is None:
            self._network = folder_network(self._check_ir(), self.precision)
            if self.precision == 'bf16' and self._network.executed_precision != 'bf16':
                print_log(f'{SEGMENTOR_TYPE}: this CPU has no bf16 ({describe_flags(cpu_flags())}); OpenVINO runs the '
                          f'bf16 folder in {self._network.executed_precision}', logger='current', level=logging.WARNING)
        return self._network(x).to(x.device)

    def __getstate__(self) -> Dict[str, Any]:  # deepcopy/pickle: the compiled model is rebuilt on demand
        return dict(self.__dict__, _network=None)


@MODELS.register_module()
class OpenVINOEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` whose ``IRNetwork`` maps the preprocessed batch to the decode head's logits (not resized)."""

    @property
    def form(self) -> str:
        """'int8' or 'bf16', by which ``repseg.runtime.with_runtime`` runs a folder's segmentor in its own network."""
        return self.network.precision if self.network.precision in FOLDER_FORMS else 'int8'

    def __init__(self, ir: dict, num_classes: int, out_channels: Optional[int] = None, align_corners: bool = False,
                 data_preprocessor: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 train_cfg: Optional[dict] = None, init_cfg: Optional[dict] = None, **unused: Any):
        BaseSegmentor.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.num_classes, self.out_channels = int(num_classes), int(out_channels or num_classes)
        if self.num_classes != (2 if self.out_channels == 1 else self.out_channels):  # mmseg's rule for its heads
            raise ValueError(f'{SEGMENTOR_TYPE}: model.num_classes={self.num_classes} does not fit '
                             f'model.out_channels={self.out_channels} (the channels of its IR); use the int8_config.py '
                             f'written with this int8.pth, unedited')
        self.network = IRNetwork(**dict(ir), out_channels=self.out_channels)
        self.align_corners, self.train_cfg = bool(align_corners), train_cfg
        self.test_cfg = ConfigDict(test_cfg or dict(mode='whole'))

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """The network, then the decode head's resize to the input (``BaseDecodeHead.predict_by_feat``)."""
        return BaseDecodeHead.predict_by_feat(self, self.network(inputs), batch_img_metas)

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None) -> Tensor:
        return self.network(inputs)

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        raise NotImplementedError(f'{SEGMENTOR_TYPE} is for inference only; train the float model')


def ir_model_config(segmentor: nn.Module, ir: Dict[str, bytes], precision: str = 'int8') -> ConfigDict:
    """The ``model`` of the int8 config: the float segmentor's preprocessing and test settings around the IR."""
    return ConfigDict(
        type=SEGMENTOR_TYPE, data_preprocessor=copy.deepcopy(segmentor.cfg.model.get('data_preprocessor')),
        test_cfg=copy.deepcopy(dict(segmentor.test_cfg)), num_classes=int(segmentor.num_classes),
        out_channels=int(segmentor.out_channels), align_corners=bool(segmentor.align_corners),
        ir=dict(xml_bytes=len(ir['xml']), bin_bytes=len(ir['weights']), sha256=ir_digest(ir['xml'], ir['weights']),
                precision=precision))


def ir_segmentor(float_model: nn.Module) -> OpenVINOEncoderDecoder:
    """An ``OpenVINOEncoderDecoder`` with the float segmentor's settings and ``cfg`` but no IR, for ``network.use``."""
    model = MODELS.build(ir_model_config(float_model, {'xml': b'', 'weights': b''}, precision='fp32'))
    model.dataset_meta, model.cfg = getattr(float_model, 'dataset_meta', None), float_model.cfg
    return model.eval()
