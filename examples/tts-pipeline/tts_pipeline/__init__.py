"""The TTS pipeline example's own code: chunking, MP3 merging, speech providers, object storage,
the story_jobs table, the GraphQL backend and its page. The Conveyor tasks live in ../tasks/."""
