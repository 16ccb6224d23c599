"""An MMSegmentation segmentor whose network is an OpenVINO model (the int8 result of ``tools/quantize.py``).

Everything around the network stays MMSegmentation's ``EncoderDecoder`` (data preprocessing, whole-image or
sliding-window inference, the bilinear resize of the head's logits, padding removal, resizing to the original
image, argmax), so ``tools/test.py``, ``tools/infer.py`` and ``repseg.apis`` run it unchanged.

The IR travels inside a normal checkpoint: the state dict holds the xml and bin files as uint8 buffers
(``network.xml``, ``network.weights``) whose sizes and SHA-256 the config records, so ``Runner.load_checkpoint``
and ``repseg.apis.init_segmentor`` restore it like any weights, a checkpoint of another model is refused in one
line, and the folder is self-contained. The network is compiled on first use.

``ir_model_config`` is the ``model`` of an int8 config for a float segmentor; ``ir_segmentor`` builds one without
an IR, into which candidate networks are plugged for evaluation.
"""
import copy
import hashlib
from typing import Any, Callable, Dict, List, Optional

import torch
from mmengine.config import ConfigDict
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.models.segmentors import EncoderDecoder
from mmseg.models.segmentors.base import BaseSegmentor
from mmseg.registry import MODELS
from torch import Tensor, nn

from repseg.runtime.openvino_runtime import OpenVINONetwork, read_ir

SEGMENTOR_TYPE = 'OpenVINOEncoderDecoder'


def ir_digest(xml: bytes, weights: bytes) -> str:
    """SHA-256 over the xml and bin bytes (what the config records to pair it with its checkpoint)."""
    return hashlib.sha256(hashlib.sha256(xml).digest() + hashlib.sha256(weights).digest()).hexdigest()


class IRNetwork(nn.Module):
    """The IR as two uint8 buffers, compiled lazily into a ``Tensor -> Tensor`` OpenVINO callable.

    ``use`` plugs in any callable instead (quantization evaluates candidate models this way, without writing them).
    """

    def __init__(self, xml_bytes: int = 0, bin_bytes: int = 0, sha256: str = '', precision: str = 'int8'):
        super().__init__()
        self.register_buffer('xml', torch.zeros(int(xml_bytes), dtype=torch.uint8))
        self.register_buffer('weights', torch.zeros(int(bin_bytes), dtype=torch.uint8))
        self.sha256 = sha256
        self.precision = precision
        self._network: Optional[Callable[[Tensor], Tensor]] = None

    def use(self, network: Optional[Callable[[Tensor], Tensor]]) -> None:
        self._network = network

    def set_ir(self, xml: bytes, weights: bytes) -> None:
        """Hold these IR bytes (and record their digest); the next call compiles them."""
        self.xml = torch.frombuffer(bytearray(xml), dtype=torch.uint8) if xml else torch.zeros(0, dtype=torch.uint8)
        self.weights = torch.frombuffer(bytearray(weights), dtype=torch.uint8) if weights else self.xml[:0]
        self.sha256 = ir_digest(xml, weights)
        self._network = None

    def ir(self) -> Dict[str, bytes]:
        return {'xml': self.xml.cpu().numpy().tobytes(), 'weights': self.weights.cpu().numpy().tobytes()}

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._network = None  # new bytes: compile (and check) them on the next call

    def compile(self) -> Callable[[Tensor], Tensor]:
        ir = self.ir()
        if not ir['xml'] or not any(ir['xml'][:64]):
            raise ValueError(f'{SEGMENTOR_TYPE}: no IR loaded; load the checkpoint written with this config '
                             f'(DIR/int8.pth beside DIR/int8_config.py)')
        digest = ir_digest(ir['xml'], ir['weights'])
        if self.sha256 and digest != self.sha256:
            raise ValueError(f'{SEGMENTOR_TYPE}: the checkpoint\'s IR (sha256 {digest[:12]}...) is not the one '
                             f'this config was written for ({self.sha256[:12]}...); use the int8.pth written with '
                             f'this int8_config.py')
        self._network = OpenVINONetwork(read_ir(ir['xml'], ir['weights']))
        return self._network

    def forward(self, x: Tensor) -> Tensor:
        network = self._network or self.compile()
        return network(x).to(x.device)

    def __getstate__(self) -> Dict[str, Any]:  # deepcopy/pickle: the compiled model is rebuilt on demand
        state = self.__dict__.copy()
        state['_network'] = None
        return state


@MODELS.register_module()
class OpenVINOEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` for inference whose backbone + decode head is one OpenVINO network (``IRNetwork``):
    input the preprocessed N x 3 x H x W batch, output the decode head's logits (before resizing)."""

    #: ``repseg.runtime.with_runtime`` runs an int8-form segmentor in its own network ('eager' and 'openvino' leave
    #: it as it is; other runtimes are refused)
    form = 'int8'

    def __init__(self, ir: dict, num_classes: int, out_channels: Optional[int] = None, align_corners: bool = False,
                 data_preprocessor: Optional[dict] = None, test_cfg: Optional[dict] = None,
                 train_cfg: Optional[dict] = None, pretrained: Optional[str] = None, init_cfg: Optional[dict] = None,
                 **unused: Any):
        BaseSegmentor.__init__(self, data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.network = IRNetwork(**dict(ir))
        self.num_classes = int(num_classes)
        self.out_channels = int(out_channels or num_classes)
        self.align_corners = bool(align_corners)
        self.train_cfg = train_cfg
        self.test_cfg = ConfigDict(test_cfg or dict(mode='whole'))

    def extract_feat(self, inputs: Tensor) -> List[Tensor]:
        raise NotImplementedError(f'{SEGMENTOR_TYPE} computes the logits in one OpenVINO network; it has no '
                                  f'features to extract')

    def encode_decode(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """The network, then the decode head's resize to the input (``BaseDecodeHead.predict_by_feat``)."""
        return BaseDecodeHead.predict_by_feat(self, self.network(inputs), batch_img_metas)

    def _forward(self, inputs: Tensor, data_samples: Optional[list] = None) -> Tensor:
        return self.network(inputs)

    def loss(self, inputs: Tensor, data_samples: list) -> dict:
        raise NotImplementedError(f'{SEGMENTOR_TYPE} is for inference only; train the float model')


def ir_model_config(segmentor: nn.Module, ir: Dict[str, bytes], precision: str = 'int8') -> ConfigDict:
    """The ``model`` of the int8 config: the float segmentor's preprocessing and test settings around the IR."""
    cfg = segmentor.cfg.model if hasattr(segmentor, 'cfg') else None
    data_preprocessor = copy.deepcopy(cfg.get('data_preprocessor')) if cfg is not None else None
    return ConfigDict(type=SEGMENTOR_TYPE, data_preprocessor=data_preprocessor,
                      test_cfg=copy.deepcopy(dict(segmentor.test_cfg)), num_classes=int(segmentor.num_classes),
                      out_channels=int(segmentor.out_channels), align_corners=bool(segmentor.align_corners),
                      ir=dict(xml_bytes=len(ir['xml']), bin_bytes=len(ir['weights']),
                              sha256=ir_digest(ir['xml'], ir['weights']), precision=precision))


def ir_segmentor(float_model: nn.Module) -> OpenVINOEncoderDecoder:
    """An ``OpenVINOEncoderDecoder`` with the float segmentor's settings and no IR: networks are plugged in with
    ``network.use``."""
    model = MODELS.build(ir_model_config(float_model, {'xml': b'', 'weights': b''}, precision='fp32'))
    model.dataset_meta = getattr(float_model, 'dataset_meta', None)
    if hasattr(float_model, 'cfg'):  # the inference API (agreement images) reads the test pipeline from it
        model.cfg = float_model.cfg
    return model.eval()
