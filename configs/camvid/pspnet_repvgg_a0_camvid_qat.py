# Remedy (d) of docs/quantization.md: quantization-aware fine-tuning (NNCF fake quantization) of the trained
# PSPNet-RepVGG-A0 of pspnet_repvgg_a0_camvid.py, in its deploy form (repseg/quantization/qat.py). Ends in the same
# int8 folder as tools/quantize.py, evaluated the same way: WORK_DIR/int8/{int8_config.py,int8.pth,quantization.json}.
#   python tools/train.py configs/camvid/pspnet_repvgg_a0_camvid.py --work-dir work_dirs/camvid/pspnet_repvgg_a0_camvid
#   python tools/train.py configs/camvid/pspnet_repvgg_a0_camvid_qat.py \
#       --work-dir work_dirs/camvid/pspnet_repvgg_a0_camvid_qat
#   python tools/test.py work_dirs/camvid/pspnet_repvgg_a0_camvid_qat/int8/int8_config.py \
#       work_dirs/camvid/pspnet_repvgg_a0_camvid_qat/int8/int8.pth
# Another float checkpoint: --cfg-options model.checkpoint=PATH. Calibration (the quantizers' initial ranges) reads
# the float config's training split.
_base_ = ['./pspnet_repvgg_a0_camvid.py']
custom_imports = dict(imports=['repseg', 'repseg.quantization.qat'], allow_failed_imports=False)
model = dict(_delete_=True, type='QATEncoderDecoder', float_config='{{ fileDirname }}/pspnet_repvgg_a0_camvid.py',
             checkpoint='work_dirs/camvid/pspnet_repvgg_a0_camvid/iter_500.pth', num_calib=64)
# fine-tuning: 200 iterations at 1/50 of the from-scratch lr (the official RepVGG QAT: 1e-3 after 0.1), poly to 0.
# No paramwise_cfg: NNCF shares one quantizer between the inputs of PSP's concatenation, and mmengine's per-parameter
# constructor would then list its scale twice.
max_iters = 200
optim_wrapper = dict(optimizer=dict(lr=0.001))
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters + 1, by_epoch=False)]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
custom_hooks = [dict(type='QATExportHook', out_dir='int8',
                     agreement_images=['data/camvid/val'])]
