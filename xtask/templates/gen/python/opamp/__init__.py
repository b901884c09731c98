"""OpAMP v0.17.0 messages: `from opamp import opamp_pb2, anyvalue_pb2`."""
