"""The TTS pipeline example's own code: chunking, MP3 merging, speech providers, object storage,
the generation_jobs table and the GraphQL backend. The Conveyor tasks live in ../tasks/."""
