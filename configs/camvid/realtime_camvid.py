# RepSeg's recommended model for a CPU, on CamVid: DualRepVGG-T (docs/realtime.md says why).
_base_ = ['./dualrepvgg-t_camvid.py']
