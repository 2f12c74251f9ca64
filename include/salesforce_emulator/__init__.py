"""A local HTTPS emulator of the Salesforce REST and Bulk API 2.0, for tests, demos and benchmarks.

See README.md in this folder for the contract (CLI, admin API, wire behaviour).
"""
