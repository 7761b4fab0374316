"""Worker-side functions of each stage: file I/O around the pure functions in `curate.stages`."""
