"""`python -m runner.chat`: the course's chatbot over any configured model, and a two-model arena."""
