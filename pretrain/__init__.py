"""ImageNet pretraining with early/late dropout and stochastic depth schedules."""
