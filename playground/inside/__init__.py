"""Inside the model: logit lens, attention weights and the tokenizer view, for whatever causal LM is loaded
(with its active adapter). Gradio-free; results are typed dataclasses that also serialise to API dicts."""
