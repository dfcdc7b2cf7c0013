"""Tests for nsd_pkl_to_runner.py, on the fake pickle from make_fake_nsd_pkl.py.

Run: python -m unittest discover -s scripts -p 'test_*.py'
"""

import csv
import json
import math
import os
import pickle
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_fake_nsd_pkl  # noqa: E402

CONVERTER = os.path.join(HERE, "nsd_pkl_to_runner.py")
PKL_NAME = "subj07_nativesurface_nsdgeneral.pkl"


def run_converter(*args):
    return subprocess.run([sys.executable, CONVERTER, *args], capture_output=True, text=True)


class ConverterTest(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        self.pkl = os.path.join(self.tmp, PKL_NAME)
        self.data = make_fake_nsd_pkl.make_fake()
        make_fake_nsd_pkl.write(self.pkl, self.data)
        self.out = os.path.join(self.tmp, "out")

    def tearDown(self):
        self._tmp.cleanup()

    def write_pkl(self, data):
        path = os.path.join(self.tmp, "broken_" + PKL_NAME)
        with open(path, "wb") as f:
            pickle.dump(data, f)
        return path

    def assert_no_output(self):
        self.assertFalse(os.path.exists(self.out), "a failed conversion left OUT_DIR behind")
        leftovers = [n for n in os.listdir(self.tmp) if n.startswith(".out.")]
        self.assertEqual(leftovers, [], "a failed conversion left a temporary directory behind")

    # --- the happy path -------------------------------------------------------------------

    def test_fake_pickle_has_hw2_structure(self):
        with open(self.pkl, "rb") as f:
            d = pickle.load(f)
        self.assertEqual(set(d), {"image_data", "brain_data", "voxel_metadata"})
        self.assertEqual(d["image_data"]["train"].shape, (12, 16, 16, 3))
        self.assertEqual(d["brain_data"]["test"]["rh"].shape, (6, 3, 8))
        self.assertEqual(d["brain_data"]["test"]["rh"].dtype, np.float32)
        self.assertIn("lh.prf-visualrois.label", d["voxel_metadata"]["lh"].columns)
        self.assertTrue(d["voxel_metadata"]["lh"]["lh.streams.label"].isna().any())

    def test_conversion(self):
        r = run_converter(self.pkl, self.out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("subj07", r.stdout)
        self.assertIn("voxels are nsdgeneral with ncsnr > 0", r.stdout)

        expected_files = {"subject.json", "voxels.csv"}
        for split in ("train", "val", "test"):
            expected_files.add(f"images/{split}.npy")
            expected_files |= {f"brain/{split}.lh.npy", f"brain/{split}.rh.npy"}
        found = {os.path.relpath(os.path.join(d, f), self.out).replace(os.sep, "/")
                 for d, _, fs in os.walk(self.out) for f in fs}
        self.assertEqual(found, expected_files)
        self.assertEqual([n for n in os.listdir(self.tmp) if n.startswith(".out.")], [])

        with open(os.path.join(self.out, "subject.json"), encoding="utf-8") as f:
            info = json.load(f)
        self.assertEqual(info, {
            "format": "runner-nsd-v1",
            "subject": "subj07",
            "source": PKL_NAME,
            "splits": {"train": 12, "val": 4, "test": 6},
            "hemis": ["lh", "rh"],
            "repeats": 3,
            "image_shape": [16, 16, 3],
        })
        self.assertEqual(list(info["splits"]), ["train", "val", "test"])

        for split, n in info["splits"].items():
            img = np.load(os.path.join(self.out, "images", f"{split}.npy"), allow_pickle=False)
            self.assertEqual(img.dtype, np.uint8)
            self.assertEqual(img.shape, (n, 16, 16, 3))
            self.assertTrue(img.flags.c_contiguous)
            np.testing.assert_array_equal(img, self.data["image_data"][split])
            for hemi, v in (("lh", 10), ("rh", 8)):
                b = np.load(os.path.join(self.out, "brain", f"{split}.{hemi}.npy"), allow_pickle=False)
                self.assertEqual(b.dtype, np.float32)
                self.assertEqual(b.shape, (n, 3, v))
                self.assertTrue(b.flags.c_contiguous)
                np.testing.assert_array_equal(b, self.data["brain_data"][split][hemi])

        with open(os.path.join(self.out, "voxels.csv"), "rb") as f:
            raw = f.read()
        self.assertNotIn(b"\r", raw)
        rows = list(csv.reader(raw.decode("utf-8").splitlines()))
        header, body = rows[0], rows[1:]
        self.assertEqual(header, ["hemi", "index", "ncsnr", "nsdgeneral", "streams", "prf-visualrois",
                                  "curvature"])
        self.assertEqual(len(body), 18)
        self.assertEqual([(r[0], int(r[1])) for r in body],
                         [("lh", i) for i in range(10)] + [("rh", i) for i in range(8)])
        for row in body:
            hemi, i = row[0], int(row[1])
            meta = self.data["voxel_metadata"][hemi].iloc[i]
            # floats round-trip exactly
            self.assertEqual(float(row[2]), meta[f"{hemi}.ncsnr"])
            self.assertEqual(float(row[6]), meta[f"{hemi}.curvature"])
            self.assertEqual(row[3], meta[f"{hemi}.nsdgeneral.label"])
            self.assertEqual(row[5], meta[f"{hemi}.prf-visualrois.label"])
            streams = meta[f"{hemi}.streams.label"]
            if isinstance(streams, float) and math.isnan(streams):
                self.assertEqual(row[4], "", "a NaN label must be an empty field")
            else:
                self.assertEqual(row[4], streams)
        self.assertEqual(body[2][4], "")  # the fake's NaN streams label (lh voxel 2)

    def test_subject_option(self):
        r = run_converter(self.pkl, self.out, "--subject", "S1")
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(self.out, "subject.json"), encoding="utf-8") as f:
            self.assertEqual(json.load(f)["subject"], "S1")

    # --- errors ---------------------------------------------------------------------------

    def test_mismatched_image_and_brain_counts(self):
        self.data["image_data"]["val"] = self.data["image_data"]["val"][:3]
        r = run_converter(self.write_pkl(self.data), self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("'val'", r.stderr)
        self.assertIn("3 images", r.stderr)
        self.assertIn("(4, 3, 10)", r.stderr)
        self.assert_no_output()

    def test_voxel_count_disagrees_with_metadata(self):
        self.data["voxel_metadata"]["rh"] = self.data["voxel_metadata"]["rh"].iloc[:7]
        r = run_converter(self.write_pkl(self.data), self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("voxel_metadata['rh']", r.stderr)
        self.assertIn("7 rows", r.stderr)
        self.assert_no_output()

    def test_brain_not_3d(self):
        self.data["brain_data"]["test"]["lh"] = self.data["brain_data"]["test"]["lh"].mean(axis=1)
        r = run_converter(self.write_pkl(self.data), self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("brain_data['test']['lh'] must be 3-D", r.stderr)
        self.assert_no_output()

    def test_images_not_uint8(self):
        self.data["image_data"]["train"] = self.data["image_data"]["train"].astype(np.float32)
        r = run_converter(self.write_pkl(self.data), self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("image_data['train'] must be uint8", r.stderr)
        self.assert_no_output()

    def test_missing_required_column(self):
        self.data["voxel_metadata"]["lh"] = self.data["voxel_metadata"]["lh"].drop(columns=["lh.ncsnr"])
        r = run_converter(self.write_pkl(self.data), self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("'lh.ncsnr'", r.stderr)
        self.assert_no_output()

    def test_existing_output_refused_without_force(self):
        os.mkdir(self.out)
        marker = os.path.join(self.out, "keep.txt")
        with open(marker, "w") as f:
            f.write("mine")
        r = run_converter(self.pkl, self.out)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--force", r.stderr)
        self.assertTrue(os.path.exists(marker), "the existing directory must be left alone")
        self.assertFalse(os.path.exists(os.path.join(self.out, "subject.json")))

        r = run_converter(self.pkl, self.out, "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(os.path.exists(marker), "--force replaces the directory")
        self.assertTrue(os.path.exists(os.path.join(self.out, "subject.json")))
        self.assertEqual(sorted(os.listdir(self.tmp)), sorted([PKL_NAME, "out"]))


if __name__ == "__main__":
    unittest.main()
