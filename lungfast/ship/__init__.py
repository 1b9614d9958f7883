"""Stage 4, shipping: export the winner, load models safely, predict from files, serve the Gradio app."""
