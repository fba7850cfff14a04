"""Entropy coding of integer latent symbols with constriction, from integer tables only.

A latent blob (the payload of one latent, image or video frame) is

    byte 0      method (bits 0-2: 1 = ANS, 2 = range coder) | bit 3: centres present
                | bit 4: adaptive (tables are priors updated by counts, see below)
                | bits 5-6: check (0 none, 1 = 16 bits, 2 = 32 bits of the symbols' CRC-32)
    C bytes     table index per channel (into the shipped `pmf_tables.npz`)
    [C svarint] per-channel integer centre, only when bit 3 is set
    rest        coder words, little-endian uint32, with up to 3 trailing zero bytes of the
                last word dropped (restored on decode)

Per channel the symbols minus its centre are coded under one shipped integer pmf: either
static (i.i.d.), or adaptive: the channel is cut into blocks of 4 symbols (raster order)
and each block is coded with integer weights (table >> 8) + (count << 11), i.e. the table
worth 32 observations plus the bin counts of the channel's earlier blocks (halved whenever
they pass 64, to follow local statistics), renormalised with integer arithmetic only.
Values beyond ±63 code an escape bin (its sign) followed by the excess e = |u| - 64 as
k = floor(log2(e + 1)) with Uniform(21) and then the low k bits of e + 1 with Uniform(2**k).

The check is the only redundancy in a blob: an entropy-coded payload has none (any word
sequence decodes to *some* symbols), so without it a payload that runs out early or was altered
behind a re-computed chunk CRC decodes to another picture. It is coded after the last symbol
(decoded last), so a payload that ends early decodes it from whatever is left (zeros once the
coder is empty) and fails it; it costs about its 16/32 bits.
Blobs written before the check existed still decode; for them (ANS only) a coder that is empty
before a row or block starts means the payload ran out early.

Determinism: each model handed to constriction is `Categorical(freqs - 1, perfect=False)`
with integer `freqs` summing to 2**24, i.e. float64 weights that sum exactly to
2**24 - n. constriction's fast quantizer then computes scale = 1.0 exactly and assigns
each symbol exactly freqs[i] / 2**24: no rounding anywhere, same model on every machine.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import constriction
import numpy as np

from neurcodec.bitstream.quantize import MAX_SYMBOL
from neurcodec.bitstream.tables import ALPHABET, HALF_RANGE, NUM_TABLES, PRECISION, load_tables
from neurcodec.bitstream.varint import ByteReader, encode_svarint
from neurcodec.errors import CorruptFileError, NeurcodecError, UnsupportedFileError

METHOD_ANS = 1
METHOD_RANGE = 2
_METHOD_MASK = 0x07
_CENTRES_FLAG = 0x08
_ADAPTIVE_FLAG = 0x10
_CHECK_MASK = 0x60
_CHECK_SHIFT = 5
_CHECK_WIDTHS = {0: 0, 1: 16, 2: 32}  # field value -> check bits; 3 is reserved
_RESERVED_MASK = 0x80
_FREE_WEIGHT = (1 << PRECISION) - ALPHABET  # what constriction distributes beyond 1 per bin
_PRIOR_SHIFT = 8  # prior mass 2**16 ...
_COUNT_SHIFT = 11  # ... and 2**11 per observation: the table weighs as 32 observations
_COUNT_LIMIT = 64  # halve the counts beyond this: latents are not stationary over the image
_BLOCK = 4  # symbols coded per model update (tuned on the stand-in latents, see benchmarks)
ESCAPE_CLASSES = 21  # k in 0..20: escapes up to 2**21 - 1 beyond the table range
DEFAULT_METHOD = METHOD_ANS  # measured smaller than range coding, see benchmarks/entropy_efficiency.py
CHECK_BITS = tuple(_CHECK_WIDTHS.values())
DEFAULT_CHECK_BITS = 32
_CHECK_HALF = 1 << 16  # the check is coded in 16-bit halves (constriction's precision is 24)

_ESC_LOW = 0
_ESC_HIGH = ALPHABET - 1


@lru_cache(maxsize=NUM_TABLES)
def _model(table: int):
    weights = load_tables()[table].astype(np.float64) - 1.0  # exact: integers < 2**24
    return constriction.stream.model.Categorical(weights, perfect=False)


class _AdaptiveCounts:
    """Integer bin counts of one channel, updated after every block, halved when they
    exceed _COUNT_LIMIT so the model follows local statistics (raster order)."""

    def __init__(self, table: int):
        self.prior = load_tables()[table].astype(np.int64) >> _PRIOR_SHIFT
        self.counts = np.zeros(ALPHABET, dtype=np.int64)

    def weights(self) -> np.ndarray:
        """Integer weights summing to exactly _FREE_WEIGHT, so constriction's p = (w + 1) / 2**24."""
        raw = self.prior + (self.counts << _COUNT_SHIFT)
        weights = raw * _FREE_WEIGHT // int(raw.sum())  # < 2**24 * 2**24: fits int64
        weights[int(np.argmax(raw))] += _FREE_WEIGHT - int(weights.sum())
        return weights

    def update(self, idx: np.ndarray) -> None:
        self.counts += np.bincount(idx, minlength=ALPHABET)
        if int(self.counts.sum()) > _COUNT_LIMIT:
            self.counts = (self.counts + 1) >> 1


def _adaptive_models(table: int, idx: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(start, end, weights) of every block, given the channel's bin indices (encoder side)."""
    state, out = _AdaptiveCounts(table), []
    for start in range(0, idx.size, _BLOCK):
        end = min(idx.size, start + _BLOCK)
        out.append((start, end, state.weights()))
        state.update(idx[start:end])
    return out


def _adaptive_bits(table: int, idx: np.ndarray) -> float:
    return float(
        sum(
            (PRECISION - np.log2(w[idx[a:b]].astype(np.float64) + 1)).sum()
            for a, b, w in _adaptive_models(table, idx)
        )
    )


def _categorical(weights: np.ndarray):
    return constriction.stream.model.Categorical(weights.astype(np.float64), perfect=False)


@lru_cache(maxsize=1)
def _code_lengths() -> np.ndarray:
    """-log2 p for every (table, bin); encoder-side only (chooses tables, reports ideal)."""
    return PRECISION - np.log2(load_tables().astype(np.float64))


def _uniform_bits(size: int) -> np.ndarray:
    """Exact code lengths of constriction's fixed-point Uniform(size) (last symbol gets the slack)."""
    base = (1 << PRECISION) // size
    probs = np.full(size, base, dtype=np.float64)
    probs[-1] = (1 << PRECISION) - base * (size - 1)
    return PRECISION - np.log2(probs)


_ESCAPE_CLASS_BITS = _uniform_bits(ESCAPE_CLASSES)


@dataclass(frozen=True)
class ChannelPlan:
    table: int
    centre: int


@dataclass(frozen=True)
class LatentCodeReport:
    """What coding one latent cost, for benchmarks and `neurcodec info`."""

    symbols: int
    params_bytes: int  # method byte + table indices + centres
    coded_bytes: int  # coder words after trimming
    ideal_bits: float  # -sum log2 p under the exact integer model used (escapes included)
    escapes: int
    adaptive: bool = False
    check_bits: int = 0  # part of coded_bytes, not of ideal_bits

    @property
    def total_bytes(self) -> int:
        return self.params_bytes + self.coded_bytes


def _split(u: np.ndarray):
    """Offset-from-centre values -> (bin indices, escape excess e >= 0 for the escaped ones)."""
    idx = np.clip(u, -HALF_RANGE - 1, HALF_RANGE + 1) + HALF_RANGE + 1
    escaped = np.abs(u[(idx == _ESC_LOW) | (idx == _ESC_HIGH)]) - (HALF_RANGE + 1)
    return idx.astype(np.int32), escaped.astype(np.int64)


def _escape_parts(excess: np.ndarray):
    v = excess + 1
    k = np.floor(np.log2(v.astype(np.float64))).astype(np.int64)
    # guard float log2 at exact powers of two
    k = np.where((1 << (k + 1)) <= v, k + 1, k)
    k = np.where((1 << k) > v, k - 1, k)
    return k.astype(np.int32), (v - (1 << k)).astype(np.int32)


def plan_channels(symbols: np.ndarray) -> list[ChannelPlan]:
    """Per channel, the (table, centre) with the fewest ideal bits; the centre is the median."""
    lengths = _code_lengths()
    plans = []
    for channel in symbols.reshape(symbols.shape[0], -1).astype(np.int64):
        best = None
        for centre in {0, int(np.median(channel))}:
            idx, _ = _split(channel - centre)
            hist = np.bincount(idx, minlength=ALPHABET).astype(np.float64)
            costs = lengths @ hist
            table = int(np.argmin(costs))
            bits = costs[table] + (8 * len(encode_svarint(centre)) if centre else 0)
            if best is None or bits < best[0]:
                best = (bits, ChannelPlan(table, centre))
        plans.append(best[1])
    return plans


def symbol_check(symbols: np.ndarray) -> int:
    """CRC-32 (zlib) of the symbols as little-endian int32 in (C, h, w) order."""
    return zlib.crc32(np.ascontiguousarray(symbols, dtype="<i4").tobytes())


@lru_cache(maxsize=1)
def _uniform_half():
    return constriction.stream.model.Uniform(_CHECK_HALF)


def _check_halves(symbols: np.ndarray, check_bits: int) -> np.ndarray:
    """The check's 16-bit halves in decode order: high then low (only the low for 16 bits)."""
    crc = symbol_check(symbols)
    return np.array([crc >> 16, crc & 0xFFFF][2 - check_bits // 16 :], dtype=np.int32)


def _check_symbols(symbols: np.ndarray) -> np.ndarray:
    symbols = np.asarray(symbols)
    if symbols.ndim != 3 or 0 in symbols.shape:
        raise ValueError(f"symbols must be a non-empty (C, h, w) array, got shape {symbols.shape}")
    if not np.issubdtype(symbols.dtype, np.integer):
        raise ValueError(f"symbols must be integers, got {symbols.dtype}")
    if symbols.shape[0] > 255 or np.abs(symbols.astype(np.int64)).max() > MAX_SYMBOL:
        raise ValueError(f"at most 255 channels and |symbol| <= {MAX_SYMBOL}")
    return symbols.astype(np.int64)


def encode_latent(
    symbols: np.ndarray,
    method: int = DEFAULT_METHOD,
    plans: list[ChannelPlan] | None = None,
    adaptive: bool | None = None,
    check_bits: int = DEFAULT_CHECK_BITS,
) -> bytes:
    """Code a (C, h, w) integer symbol array into a self-describing latent blob.

    `adaptive=None` picks static or adaptive coding, whichever has the smaller ideal size.
    `check_bits` (0, 16 or 32) of the symbols' CRC-32 let the decoder refuse a payload that
    ends early or was altered; 0 writes the unchecked layout of older files.
    """
    if check_bits not in CHECK_BITS:
        raise ValueError(f"check_bits must be one of {CHECK_BITS}, got {check_bits}")
    symbols = _check_symbols(symbols)
    plans = plans if plans is not None else plan_channels(symbols)
    if adaptive is None:
        adaptive = ideal_bits(symbols, plans, True)[0] < ideal_bits(symbols, plans, False)[0]
    flat = symbols.reshape(symbols.shape[0], -1)
    # Decode order per channel: bins (block by block), escape classes, escape mantissas.
    parts: list[tuple[np.ndarray, object, np.ndarray | None]] = []
    uniform = constriction.stream.model.Uniform()
    for plan, channel in zip(plans, flat, strict=True):
        idx, excess = _split(channel - plan.centre)
        if adaptive:
            for a, b, weights in _adaptive_models(plan.table, idx):
                parts.append((idx[a:b], _categorical(weights), None))
        else:
            parts.append((idx, _model(plan.table), None))
        if excess.size:
            k, mantissa = _escape_parts(excess)
            parts.append((k, uniform, np.full(k.size, ESCAPE_CLASSES, dtype=np.int32)))
            wide = k > 0
            if wide.any():
                parts.append((mantissa[wide], uniform, (1 << k[wide]).astype(np.int32)))
    if check_bits:
        parts.append((_check_halves(symbols, check_bits), _uniform_half(), None))
    if method == METHOD_ANS:
        coder = constriction.stream.stack.AnsCoder()
        for values, model, params in reversed(parts):  # a stack: encode last-decoded first
            if params is None:
                coder.encode_reverse(values, model)
            else:
                coder.encode_reverse(values, model, params)
    elif method == METHOD_RANGE:
        coder = constriction.stream.queue.RangeEncoder()
        for values, model, params in parts:
            if params is None:
                coder.encode(values, model)
            else:
                coder.encode(values, model, params)
    else:
        raise ValueError(f"unknown entropy coding method {method}")
    words = coder.get_compressed().astype("<u4").tobytes()
    trim = 0
    while trim < 3 and trim < len(words) and words[len(words) - 1 - trim] == 0:
        trim += 1
    words = words[: len(words) - trim]
    centred = any(p.centre for p in plans)
    flags = method | (_CENTRES_FLAG if centred else 0) | (_ADAPTIVE_FLAG if adaptive else 0)
    flags |= {bits: code for code, bits in _CHECK_WIDTHS.items()}[check_bits] << _CHECK_SHIFT
    head = bytearray([flags])
    head += bytes(p.table for p in plans)
    if centred:
        for p in plans:
            head += encode_svarint(p.centre)
    return bytes(head) + words


@dataclass(frozen=True)
class _BlobParams:
    method: int
    adaptive: bool
    check_bits: int
    plans: list[ChannelPlan]
    start: int  # where the coder words begin


def _parse_params(blob: bytes, channels: int) -> _BlobParams:
    reader = ByteReader(blob)
    first = reader.byte("latent coding method")
    if first & _RESERVED_MASK:
        raise UnsupportedFileError(
            f"latent blob uses flag bits this build does not know (0x{first:02x})"
        )
    check_bits = blob_check_bits(blob)
    method = first & _METHOD_MASK
    if method not in (METHOD_ANS, METHOD_RANGE):
        raise UnsupportedFileError(
            f"latent coding method {method} is not supported (this build knows 1=ANS, 2=range)"
        )
    tables = reader.take(channels, "per-channel table indices")
    centres = [0] * channels
    if first & _CENTRES_FLAG:
        centres = [reader.svarint("channel centre", MAX_SYMBOL) for _ in range(channels)]
    plans = [ChannelPlan(t, c) for t, c in zip(tables, centres, strict=True)]
    return _BlobParams(method, bool(first & _ADAPTIVE_FLAG), check_bits, plans, reader.pos)


def _refuse_if_exhausted(coder) -> None:
    # Only for unchecked ANS blobs: once an ANS coder is empty it decodes the first bin for
    # free, forever, so a valid payload is empty only after its very last symbols.
    if coder is not None and coder.is_empty():
        raise CorruptFileError("latent payload ends before the latent does")


def _decode_bins(coder, plan: ChannelPlan, n: int, width: int, adaptive: bool, guard) -> np.ndarray:
    """A channel's n bins; `guard` (an ANS coder or None) is probed before every row / block."""
    if not adaptive:
        if guard is None:
            return np.asarray(coder.decode(_model(plan.table), n), dtype=np.int64)
        rows = []
        for a in range(0, n, width):
            _refuse_if_exhausted(guard)
            rows.append(np.asarray(coder.decode(_model(plan.table), min(width, n - a)), np.int64))
        return np.concatenate(rows)
    idx = np.empty(n, dtype=np.int64)
    state = _AdaptiveCounts(plan.table)
    for a in range(0, n, _BLOCK):
        b = min(n, a + _BLOCK)
        _refuse_if_exhausted(guard)
        idx[a:b] = coder.decode(_categorical(state.weights()), b - a)
        if idx[a:b].min() < 0 or idx[a:b].max() >= ALPHABET:
            raise CorruptFileError("latent payload decodes to an impossible symbol")
        state.update(idx[a:b])
    return idx


def decode_latent(
    blob: bytes, shape: tuple[int, int, int], require_check: bool = False
) -> np.ndarray:
    """Inverse of `encode_latent`; `shape` comes from the (bounded) container header, and
    `require_check` from its promise that every latent carries a check (`latent_checks`)."""
    channels, height, width = shape
    params = _parse_params(blob, channels)
    if require_check and not params.check_bits:
        raise CorruptFileError("a latent blob has no check, but the file says every latent carries one")
    payload = blob[params.start :]
    payload += b"\0" * (-len(payload) % 4)
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    n = height * width
    out = np.empty((channels, n), dtype=np.int32)
    uniform = constriction.stream.model.Uniform()
    try:
        if params.method == METHOD_ANS:
            coder = constriction.stream.stack.AnsCoder(words)
        else:
            coder = constriction.stream.queue.RangeDecoder(words)
        guard = coder if params.method == METHOD_ANS and not params.check_bits else None
        for c, plan in enumerate(params.plans):
            idx = _decode_bins(coder, plan, n, width, params.adaptive, guard)
            if idx.min() < 0 or idx.max() >= ALPHABET:
                raise CorruptFileError("latent payload decodes to an impossible symbol")
            u = idx - (HALF_RANGE + 1)
            low, high = idx == _ESC_LOW, idx == _ESC_HIGH
            escaped = low | high
            m = int(escaped.sum())
            if m:
                k = np.asarray(
                    coder.decode(uniform, np.full(m, ESCAPE_CLASSES, dtype=np.int32)), np.int64
                )
                value = np.ones(m, dtype=np.int64) << k  # = e + 1 before the low bits
                wide = k > 0
                if wide.any():
                    sizes = (1 << k[wide]).astype(np.int32)
                    value[wide] += np.asarray(coder.decode(uniform, sizes), dtype=np.int64)
                magnitude = value - 1 + HALF_RANGE + 1
                u[escaped] = np.where(low[escaped], -magnitude, magnitude)
            s = u + plan.centre
            if np.abs(s).max() > MAX_SYMBOL:
                raise CorruptFileError("latent payload decodes to an out-of-range symbol")
            out[c] = s
        if params.check_bits:
            found = np.asarray(coder.decode(_uniform_half(), params.check_bits // 16), np.int32)
            if not np.array_equal(found, _check_halves(out, params.check_bits)):
                raise CorruptFileError(
                    "latent payload fails its check: it ends early or was altered"
                )
        if params.method == METHOD_ANS and not coder.is_empty():
            raise CorruptFileError(
                "latent payload does not end with the last symbol (cut short, altered or padded)"
            )
    except NeurcodecError:
        raise
    except Exception as exc:  # constriction signals bad data with assorted exception types
        raise CorruptFileError(f"latent payload cannot be decoded ({exc})") from exc
    return out.reshape(channels, height, width)


def ideal_bits(
    symbols: np.ndarray, plans: list[ChannelPlan], adaptive: bool = False
) -> tuple[float, int]:
    """-sum log2 p of the symbols under exactly the integer models `encode_latent` uses."""
    lengths = _code_lengths()
    total, escapes = 0.0, 0
    for plan, channel in zip(plans, symbols.reshape(symbols.shape[0], -1).astype(np.int64)):
        idx, excess = _split(channel - plan.centre)
        if adaptive:
            total += _adaptive_bits(plan.table, idx)
        else:
            total += float(lengths[plan.table][idx].sum())
        if excess.size:
            k, _ = _escape_parts(excess)
            total += float(_ESCAPE_CLASS_BITS[k].sum() + k.sum())
            escapes += int(excess.size)
    return total, escapes


def analyse_latent(
    symbols: np.ndarray,
    method: int = DEFAULT_METHOD,
    adaptive: bool | None = None,
    check_bits: int = DEFAULT_CHECK_BITS,
) -> LatentCodeReport:
    """Code `symbols` and report the real size next to the ideal code length."""
    symbols = _check_symbols(symbols)
    plans = plan_channels(symbols)
    blob = encode_latent(symbols, method, plans, adaptive, check_bits)
    params = _parse_params(blob, symbols.shape[0])
    bits, escapes = ideal_bits(symbols, plans, params.adaptive)
    return LatentCodeReport(
        int(symbols.size), params.start, len(blob) - params.start, bits, escapes, params.adaptive,
        params.check_bits,
    )


def blob_sizes(blob: bytes, channels: int) -> tuple[int, int]:
    """(entropy-model parameter bytes, coded bytes) of a latent blob, for `neurcodec info`."""
    start = _parse_params(blob, channels).start
    return start, len(blob) - start


def blob_check_bits(blob: bytes) -> int:
    """How many bits of the symbols' CRC-32 the blob carries (0: written before checks)."""
    if not blob:
        raise CorruptFileError("empty latent blob")
    code = (blob[0] & _CHECK_MASK) >> _CHECK_SHIFT
    if code not in _CHECK_WIDTHS:
        raise UnsupportedFileError(f"latent blob uses a check this build does not know ({code})")
    return _CHECK_WIDTHS[code]


def empirical_entropy_bits(symbols: np.ndarray, per_channel: bool = True) -> float:
    """n * H(empirical histogram): per channel (summed) or pooled over the whole latent."""
    arrays = symbols.reshape(symbols.shape[0], -1) if per_channel else [symbols.ravel()]
    total = 0.0
    for a in arrays:
        _, counts = np.unique(a, return_counts=True)
        p = counts / counts.sum()
        total += float(-(counts * np.log2(p)).sum())
    return total
