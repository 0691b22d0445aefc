#!/usr/bin/env python3
"""Writes the model-format golden files with independent implementations (not this code):

  tiny.gguf         - by the `gguf` Python package (llama.cpp's gguf-py), GGUF v3, alignment 64
  tiny.safetensors  - by the `safetensors` Python package (safetensors.numpy.save_file)

tests/unit/model/{gguf,safetensors}_test.cpp check that our readers see exactly the values written
here, so keep the two in sync. Run from anywhere: python3 tests/data/model/make_golden.py
"""
import os

import numpy as np
import gguf
from gguf import GGUFValueType, GGMLQuantizationType
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def write_gguf(path):
    w = gguf.GGUFWriter(path, arch="llama")  # writes general.architecture = "llama" first
    w.add_custom_alignment(64)  # writes general.alignment and pads to it
    w.add_key_value("test.u8", 200, GGUFValueType.UINT8)
    w.add_key_value("test.i8", -100, GGUFValueType.INT8)
    w.add_key_value("test.u16", 60000, GGUFValueType.UINT16)
    w.add_key_value("test.i16", -30000, GGUFValueType.INT16)
    w.add_key_value("test.u32", 4000000000, GGUFValueType.UINT32)
    w.add_key_value("test.i32", -2000000000, GGUFValueType.INT32)
    w.add_key_value("test.u64", 18000000000000000000, GGUFValueType.UINT64)
    w.add_key_value("test.i64", -9000000000000000000, GGUFValueType.INT64)
    w.add_key_value("test.f32", 0.15625, GGUFValueType.FLOAT32)
    w.add_key_value("test.f64", -2.5e100, GGUFValueType.FLOAT64)
    w.add_key_value("test.bool", True, GGUFValueType.BOOL)
    w.add_key_value("test.string", "héllo wörld", GGUFValueType.STRING)
    w.add_key_value("test.str_array", ["a", "bc", "", "✓"], GGUFValueType.ARRAY)
    w.add_key_value("test.i32_array", [1, -2, 3], GGUFValueType.ARRAY)
    w.add_key_value("test.f32_array", [0.5, -1.25], GGUFValueType.ARRAY)
    w.add_key_value("test.nested", [[1, 2], [3]], GGUFValueType.ARRAY)
    # F32 [3, 2] in numpy order = ggml shape [2, 3]: values 0..5
    w.add_tensor("t.f32", np.arange(6, dtype=np.float32).reshape(3, 2))
    # F16 [4] values 1, 2, 3, 4
    w.add_tensor("t.f16", np.array([1, 2, 3, 4], dtype=np.float16))
    # Q8_0: two rows of one 32-element block each (34 bytes per block), raw bytes 0..67
    w.add_tensor("t.q8_0", np.arange(68, dtype=np.uint8).reshape(2, 34),
                 raw_dtype=GGMLQuantizationType.Q8_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_safetensors(path):
    tensors = {
        "w.f32": np.arange(6, dtype=np.float32).reshape(2, 3),
        "w.f16": np.array([0.5, -1.0, 2.0, 65504.0], dtype=np.float16),
        "w.i64": np.array([[1, -2]], dtype=np.int64),
        "w.u8": np.array([7, 8, 9], dtype=np.uint8),
    }
    save_file(tensors, path, metadata={"format": "pt", "note": "golden"})


if __name__ == "__main__":
    write_gguf(os.path.join(HERE, "tiny.gguf"))
    write_safetensors(os.path.join(HERE, "tiny.safetensors"))
