//! Engine tests: scripted byte exchanges with exact reply bytes.
