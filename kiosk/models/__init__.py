"""The twelve hotel models; see ``base`` for the contract and ``registry`` for the list."""
