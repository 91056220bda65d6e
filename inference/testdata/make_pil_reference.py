# Writes Pillow/transformers reference pixel values for TestPreprocessPILReference:
# a procedural 1280x720 image (same formula as the Go test) through ViTImageProcessor (slow).
import numpy as np
from PIL import Image
from transformers import ViTImageProcessor

h, w = 720, 1280
y, x = np.mgrid[0:h, 0:w]
rgb = np.stack([(x ^ y) & 255, (x * y) % 251, (x * 7 + y * 3) % 256], -1).astype(np.uint8)
img = Image.fromarray(rgb, "RGB")
for name, resample, (oh, ow) in [("bilinear-64x64", 2, (64, 64)), ("bicubic-24x40", 3, (24, 40)), ("lanczos-30x50", 1, (30, 50))]:
    p = ViTImageProcessor(size={"height": oh, "width": ow}, resample=resample, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.3, 0.4])
    px = p(images=img, return_tensors="np").pixel_values.astype("<f4")
    px.tofile(f"inference/testdata/pil-1280x720-{name}.f32")
    print(name, px.shape, float(px.mean()))
