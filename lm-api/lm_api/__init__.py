"""lm-api: llama.cpp's HTTP server run in process, and the step that fetches its model.

``python -m lm_api.model`` puts the GGUF into ``MODEL_DIR``; ``python -m lm_api.server``
serves it with the same ``LLAMA_ARG_*`` variables as the official llama.cpp image.
"""
