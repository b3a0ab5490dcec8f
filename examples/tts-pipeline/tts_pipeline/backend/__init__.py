"""The example's backend: a FastAPI app serving a GraphQL API (strawberry) that starts audio
generation jobs and reports on them. Run it with
`uvicorn tts_pipeline.backend.app:create_app --factory --port 8000`."""
