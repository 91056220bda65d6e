# Builds inference/testdata/tiny-attrs: attribute heads for the tiny fixture, exported the way
# training/lookout_train/export.py does, plus expected probabilities for the golden images.
import json, os, sys, torch, numpy as np
sys.path.insert(0, "/work/main/training")
from lookout_train.modeling import AttributeHeads
from lookout_train.export import export_attributes
from transformers import VisionEncoderDecoderModel, ViTImageProcessor
from PIL import Image
torch.manual_seed(1)
root = "/work/main"
ck = "/tmp/attrck"; os.makedirs(ck, exist_ok=True)
attrs = [{"name": "scene", "classes": ["street", "park", "indoor"], "output": "probs_scene"},
         {"name": "light", "classes": ["day", "night"], "output": "probs_light"}]
heads = AttributeHeads(32, attrs)
for h in heads.heads:
    torch.nn.init.normal_(h.weight, std=1.0)
torch.save(heads.state_dict(), f"{ck}/attributes.pt")
json.dump({"attributes": attrs, "hidden_size": 32, "seq_len": 17}, open(f"{ck}/attributes.json", "w"))
out = f"{root}/inference/testdata/tiny-attrs"
export_attributes(ck, out)
m = VisionEncoderDecoderModel.from_pretrained(f"{root}/testdata/models/tiny-vit-gpt2-pytorch").eval()
proc = ViTImageProcessor.from_pretrained(f"{root}/testdata/models/tiny-vit-gpt2-pytorch")
exp = {}
for name in sorted(os.listdir(f"{root}/testdata/golden/images")):
    img = Image.open(f"{root}/testdata/golden/images/{name}").convert("RGB")
    with torch.no_grad():
        hs = m.encoder(pixel_values=proc(images=img, return_tensors="pt").pixel_values).last_hidden_state
        probs = [torch.softmax(l, -1)[0].tolist() for l in heads(hs)]
    exp[name] = {a["name"]: p for a, p in zip(attrs, probs)}
json.dump(exp, open(f"{out}/expected.json", "w"), indent=1)
print(exp)
