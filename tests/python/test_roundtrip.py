"""Every vector survives JSON -> bytes -> message -> JSON and bytes -> bytes
unchanged with the generated Python code alone. Run with the interpreter of a
venv that has the protobuf runtime under test (the cargo harness does)."""

import unittest

import opamp_vectors as v


class RoundTrip(unittest.TestCase):
    def test_every_vector(self):
        paths = sorted(v.VECTORS.glob("*.json"))
        self.assertTrue(paths, f"no vectors found in {v.VECTORS}")
        for path in paths:
            with self.subTest(vector=path.name):
                vector = v.read_vector(path)
                wire = v.encode(vector["type"], vector["message"])
                decoded = v.decode(vector["type"], wire)
                self.assertEqual(decoded, vector["message"])
                self.assertEqual(v.encode(vector["type"], decoded), wire)
        print(f"round-trip: {len(paths)} vectors, {v.runtime()['library']} {v.runtime()['version']}")


if __name__ == "__main__":
    unittest.main(verbosity=2)
