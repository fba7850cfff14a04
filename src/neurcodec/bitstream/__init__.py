"""Bitstream room: quantization, deterministic entropy coding and the `.dae` container.

bytes ⇄ container (container.py) ⇄ entropy (entropy.py) ⇄ symbols ⇄ quantize.py ⇄ latents.
"""

from neurcodec.bitstream.container import (
    CHUNK_ALPHA,
    DaeImage,
    DaeStreamReader,
    DaeStreamWriter,
    DaeVideo,
    DecodeDefaults,
    FrameGroup,
    ImageHeader,
    VideoHeader,
    iter_dae_stream,
    peek_kind,
    read_header,
    read_image,
    read_video,
    write_image,
    write_video,
)
from neurcodec.bitstream.entropy import (
    LatentCodeReport,
    analyse_latent,
    blob_sizes,
    decode_latent,
    empirical_entropy_bits,
    encode_latent,
)
from neurcodec.bitstream.quantize import (
    StepSearchResult,
    dequantize,
    quality_to_step,
    quality_to_step_index,
    quantize,
    search_step,
    step_from_index,
)

__all__ = [
    "CHUNK_ALPHA",
    "DaeImage",
    "DaeStreamReader",
    "DaeStreamWriter",
    "DaeVideo",
    "DecodeDefaults",
    "FrameGroup",
    "ImageHeader",
    "LatentCodeReport",
    "StepSearchResult",
    "VideoHeader",
    "analyse_latent",
    "blob_sizes",
    "decode_latent",
    "dequantize",
    "empirical_entropy_bits",
    "encode_latent",
    "iter_dae_stream",
    "peek_kind",
    "quality_to_step",
    "quality_to_step_index",
    "quantize",
    "read_header",
    "read_image",
    "read_video",
    "search_step",
    "step_from_index",
    "write_image",
    "write_video",
]
