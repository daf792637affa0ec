"""What a forecast or a bet scores on the rounds: proper scores, the forecasters
compared, each head's metrics."""
