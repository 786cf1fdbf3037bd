"""The offline demo: bundled figures through data, training and descriptions, and the Gradio app."""
