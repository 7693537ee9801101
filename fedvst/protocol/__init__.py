"""Wire contracts (fedvst.proto) and their generated gRPC stubs."""
