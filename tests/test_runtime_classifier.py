"""Classifier on real exported models: backends, quantized I/O, batches, state, delegates, threads."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from _fixtures_runtime import FUSED_LSTM, eval_images, model_copy, rt_models  # noqa: F401
from mnistkit.runtime import Classifier, Prediction
from mnistkit.runtime import backends
from mnistkit.runtime.errors import UsageError

# tf.lite is checked in a child process (tests/test_runtime_isolation.py): importing TensorFlow here
# would cost seconds and leak it into every later test of the session.
TFLITE_BACKENDS = [b for b in ("litert", "tflite-runtime") if backends.installed(b)]


def _x(eval_images) -> np.ndarray:
    return eval_images[0].astype(np.float32) / np.float32(255.0)


@pytest.mark.parametrize("name", ["mlp_none.tflite", "mlp_dynamic.tflite", "mlp_int8.tflite",
                                  "mlp_uint8.tflite", "mlp_none.onnx"])
def test_predict_proba_shape_dtype_and_accuracy(rt_models, eval_images, name):
    clf = Classifier.load(rt_models / name)
    p = clf.predict_proba(_x(eval_images))
    assert p.dtype == np.float32 and p.shape == (64, 10)
    assert np.allclose(p.sum(axis=1), 1.0, atol=0.02)
    assert (p.argmax(1) == eval_images[1]).mean() > 0.7  # 1 epoch on 2k images: ~80%


def test_quantized_io_matches_float(rt_models, eval_images):
    x = _x(eval_images)
    ref = Classifier.load(rt_models / "mlp_none.tflite").predict_proba(x)
    for name, dtype in (("mlp_int8.tflite", "int8"), ("mlp_uint8.tflite", "uint8")):
        clf = Classifier.load(rt_models / name)
        info = clf.describe()
        assert info["input_dtype"] == dtype and info["output_dtype"] == dtype
        assert info["input_quantization"] is not None
        p = clf.predict_proba(x)
        assert (p.argmax(1) == ref.argmax(1)).mean() >= 0.95
        assert np.abs(p - ref).max() < 0.1  # a few quantization steps, not garbage


@pytest.mark.parametrize("backend", TFLITE_BACKENDS)
def test_each_tflite_backend_agrees(rt_models, eval_images, backend):
    x = _x(eval_images)
    ref = Classifier.load(rt_models / "mlp_none.tflite", backend="litert").predict_proba(x)
    clf = Classifier.load(rt_models / "mlp_none.tflite", backend=backend)
    assert clf.backend == backend
    np.testing.assert_allclose(clf.predict_proba(x), ref, atol=1e-5)


def test_onnx_agrees_with_tflite(rt_models, eval_images):
    x = _x(eval_images)
    for stem in ("mlp_none", "lstm_none"):
        a = Classifier.load(rt_models / f"{stem}.tflite").predict_proba(x)
        b = Classifier.load(rt_models / f"{stem}.onnx").predict_proba(x)
        np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("name", ["mlp_none.tflite", "mlp_int8.tflite", "mlp_uint8.tflite",
                                  "mlp_fixed1.tflite", "mlp_none.onnx"])
def test_uint8_pixels_give_the_same_answers_as_floats(rt_models, eval_images, name):
    """uint8 pixels mean pixel / 255: the model must see the very tensor the float path builds."""
    clf = Classifier.load(rt_models / name)
    pixels = eval_images[0]
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(clf.predict_proba(pixels), clf.predict_proba(_x(eval_images)))
    np.testing.assert_array_equal(clf.predict_proba(pixels[:3]), clf.predict_proba(_x(eval_images)[:3]))


@pytest.mark.parametrize("name", ["mlp_none.tflite", "mlp_int8.tflite", "mlp_fixed1.tflite",
                                  "lstm_none.tflite", "mlp_none.onnx", "lstm_none.onnx",
                                  "fused_lstm16.tflite"])
def test_batch_sizes_match_one_by_one(rt_models, eval_images, name):
    clf = Classifier.load(rt_models / name)
    x = _x(eval_images)
    single = np.concatenate([clf.predict_proba(x[i:i + 1]) for i in range(len(x))])
    for n in (1, 7, 64):
        got = np.concatenate([clf.predict_proba(x[i:i + n]) for i in range(0, len(x), n)])
        np.testing.assert_allclose(got, single, atol=1e-6, err_msg=f"batch {n}")
    np.testing.assert_allclose(clf.predict_proba(x[:7]), single[:7], atol=1e-6)  # shrink again


def test_fused_lstm_state_is_reset_between_calls(rt_models):
    """The fused LSTM op keeps state across invokes; the runtime must reset it every call."""
    from ai_edge_litert.interpreter import Interpreter

    x = np.random.default_rng(1).random((1, 28, 28), np.float32)
    other = np.ones((1, 28, 28), np.float32)
    raw = Interpreter(model_path=str(FUSED_LSTM))
    raw.allocate_tensors()
    inp, out = raw.get_input_details()[0]["index"], raw.get_output_details()[0]["index"]

    def bare(a):
        raw.set_tensor(inp, a)
        raw.invoke()
        return raw.get_tensor(out)

    fresh = bare(x)
    bare(other)
    assert np.abs(bare(x) - fresh).max() > 1e-3  # the hazard is real: a bare interpreter drifts

    clf = Classifier.load(rt_models / "fused_lstm16.tflite")
    assert clf.describe()["stateful"] is True
    first = clf.predict_proba(x)
    clf.predict_proba(other)
    np.testing.assert_allclose(clf.predict_proba(x), first, atol=1e-7)
    np.testing.assert_allclose(first, fresh, atol=1e-6)


def test_xnnpack_refusal_falls_back_to_builtin_kernels(rt_models, eval_images, caplog):
    x = _x(eval_images)
    with caplog.at_level(logging.DEBUG, logger="mnistkit.runtime"):
        clf = Classifier.load(rt_models / "mlp_xnnpack_refused.tflite")
        p = clf.predict_proba(x)
    assert clf.describe()["default_delegates"] is False
    assert any("refused" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)
    ref = Classifier.load(rt_models / "mlp_int8.tflite").predict_proba(x)
    assert (p.argmax(1) == ref.argmax(1)).mean() >= 0.98
    assert np.abs(p - ref).max() <= 0.02  # same weights; XNNPACK and built-in kernels round apart
    # a clone (another thread's interpreter) starts on the built-in kernels directly
    np.testing.assert_allclose(_in_thread(lambda: clf.predict_proba(x)), p, atol=1e-7)


def _in_thread(fn):
    box = []
    t = threading.Thread(target=lambda: box.append(fn()))
    t.start()
    t.join()
    return box[0]


@pytest.mark.parametrize("concurrency", ["per-thread", "lock"])
@pytest.mark.parametrize("name", ["mlp_int8.tflite", "lstm_none.tflite", "mlp_none.onnx",
                                  "fused_lstm16.tflite"])
def test_threads_give_sequential_answers(rt_models, eval_images, name, concurrency):
    clf = Classifier.load(rt_models / name, concurrency=concurrency)
    x = _x(eval_images)
    expected = clf.predict_proba(x)
    chunks = [(i, n) for n in (1, 3, 8) for i in range(0, 64 - n, 5)]

    def job(arg):
        i, n = arg
        return i, n, clf.predict_proba(x[i:i + n])

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(job, chunks * 3))
    for i, n, got in results:
        np.testing.assert_allclose(got, expected[i:i + n], atol=1e-6)


def test_threads_option(rt_models, eval_images):
    x = _x(eval_images)
    a = Classifier.load(rt_models / "lstm_none.tflite", threads=1).predict_proba(x)
    b = Classifier.load(rt_models / "lstm_none.tflite", threads=2).predict_proba(x)
    np.testing.assert_allclose(a, b, atol=1e-5)
    with pytest.raises(UsageError, match="threads"):
        Classifier.load(rt_models / "lstm_none.tflite", threads=0)


def test_classify_inputs(rt_models, eval_images):
    clf = Classifier.load(rt_models / "mlp_int8.tflite")
    images, labels = eval_images
    batch = clf.classify(images, top_k=3)
    assert len(batch) == 64 and all(isinstance(p, Prediction) for p in batch)
    p = batch[0]
    assert p.label == p.top_k[0][0] and p.confidence == p.top_k[0][1] == max(p.probabilities)
    assert len(p.top_k) == 3 and len(p.probabilities) == 10
    assert [q.label for q in batch] == [clf.classify(im)[0].label for im in images]  # single image
    assert [q.label for q in batch[:5]] == [q.label for q in clf.classify(list(images[:5]))]
    floats = clf.classify(images.astype(np.float32) / 255.0)
    assert [q.label for q in floats] == [q.label for q in batch]
    assert np.mean([q.label for q in batch] == labels) > 0.7
    with pytest.raises(Exception):
        p.label = 3  # frozen
    assert clf.classify([]) == []
    with pytest.raises(UsageError, match="top_k"):
        clf.classify(images[0], top_k=0)
    with pytest.raises(UsageError):
        clf.classify(42)
    with pytest.raises(UsageError, match="float"):
        clf.predict_proba(images.astype(np.int32))  # only uint8 has an unambiguous meaning


def test_classify_files_and_non_mnist_arrays(rt_models, eval_images, tmp_path):
    pil = pytest.importorskip("PIL.Image")
    clf = Classifier.load(rt_models / "mlp_int8.tflite")
    images, _ = eval_images
    expected = [p.label for p in clf.classify(images[:4])]
    paths = []
    for i in range(4):
        big = pil.fromarray(255 - images[i]).resize((112, 112))  # dark on light, 4x larger
        paths.append(tmp_path / f"d{i}.png")
        big.save(paths[i])
    got = clf.classify(paths)
    assert [p.source for p in got] == [str(p) for p in paths]
    assert sum(a == b.label for a, b in zip(expected, got)) >= 3
    arr = np.asarray(pil.open(paths[0]).convert("RGB"))  # (112, 112, 3) colour array
    assert clf.classify(arr)[0].label == got[0].label
