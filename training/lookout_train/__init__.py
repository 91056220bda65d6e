"""lookout_train: joint ViT+GPT-2 captioner training, ONNX export and golden outputs for lookout.

Modules:
  tok      byte-level BPE tokenizer training (tokenizers), GPT-2 style tokenizer.json
  modeling build VisionEncoderDecoderModel configs (tiny fixture, demo), attribute heads
  data     scenes dataset loading (DIR/images, captions.jsonl, schema.json), ViT preprocessing
  train    strategies: joint, alternating, multitask, transfer
  evaluate BLEU-4, exact match, slot accuracy
  export   optimum ONNX export (image-to-text-with-past) + attributes_model.onnx
  golden   golden generate() outputs for the Go engine
"""
