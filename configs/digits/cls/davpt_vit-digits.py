# DA-VPT on digits 5-9: VPT-Deep plus L_p and L_cls in the last layer, 3
# guided prompts for 5 classes, k-means mapping refreshed every epoch.
# Grid (4 points): lr {3e-3, 1e-2} x beta {0.1, 0.5}; lambda 0.1, weight
# decay 1e-4.
_base_ = ['./_base_/davpt_vit-digits.py']
