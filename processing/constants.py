"""Named constants shared by the processing modules."""

__all__ = [
    "DEFAULT_IMAGE_TOKEN",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_OCR_TOKENS",
    "DESCRIPTION_TYPES",
    "IGNORE_INDEX",
    "OCR_PAD_BOX",
]

DEFAULT_IMAGE_TOKEN = "<image>"  # one per figure in a prompt; expanded to that figure's feature count
IGNORE_INDEX = -100  # label value that PyTorch's cross-entropy skips
DEFAULT_MAX_OCR_TOKENS = 512  # LayoutLMv3's text positions (514) minus the two offset slots
OCR_PAD_BOX = [0, 0, 0, 0]  # box of special and padding OCR tokens
DESCRIPTION_TYPES = ("brief", "detailed")
# USPTO sheets are ~2,550 x 3,300 px at 300 dpi; 64 Mpx leaves room for large scans and stops decompression bombs.
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000
