"""Exports CLIP ViT-B/32 for docchat (run where torch and the weights can be downloaded):

    pip install open_clip_torch torch onnx
    python3 export_clip.py OUT_DIR [--model ViT-B-32] [--pretrained openai]

OUT_DIR gets visual.onnx ([N,3,224,224] pixels -> [N,512] image_embeds), textual.onnx
([N,77] int64 ids -> [N,512] text_embeds) and bpe_simple_vocab_16e6.txt.gz. docchat does the
preprocessing and tokenization and normalises the outputs itself.
"""
import argparse
import os
import shutil

import open_clip
import torch


class Tower(torch.nn.Module):
    def __init__(self, encode):
        super().__init__()
        self.encode = encode

    def forward(self, x):
        return self.encode(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--pretrained", default="openai")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model, _, _ = open_clip.create_model_and_transforms(args.model, pretrained=args.pretrained)
    model.eval()
    with torch.no_grad():
        torch.onnx.export(Tower(model.encode_image), torch.zeros(1, 3, 224, 224), os.path.join(args.out, "visual.onnx"),
                          input_names=["pixel_values"], output_names=["image_embeds"],
                          dynamic_axes={"pixel_values": {0: "batch"}, "image_embeds": {0: "batch"}}, opset_version=17)
        ids = open_clip.get_tokenizer(args.model)(["a photo of a cat"])
        torch.onnx.export(Tower(model.encode_text), ids, os.path.join(args.out, "textual.onnx"),
                          input_names=["input_ids"], output_names=["text_embeds"],
                          dynamic_axes={"input_ids": {0: "batch"}, "text_embeds": {0: "batch"}}, opset_version=17)
    vocab = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    shutil.copy(vocab, args.out)
    print(f"CLIP {args.model}/{args.pretrained} -> {args.out}")


if __name__ == "__main__":
    main()
