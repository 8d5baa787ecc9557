"""PPO on `KisimEnv`: config, model, callbacks, checkpoints, held-out evaluation, fine-tuning."""
