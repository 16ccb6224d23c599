# RepSeg's recommended model for a CPU, on CamVid: DualRepVGG-S (docs/realtime.md says why).
_base_ = ['./dualrepvgg-s_camvid.py']
