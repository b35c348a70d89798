using System;
using Ledger.Models;

namespace Ledger.Services;

/// <summary>Applies transfers, refusing overdrafts.</summary>
public class TransferService
{
    public void Apply(Transfer t)
    {
        if (t.From.BalanceCents < t.AmountCents)
            throw new InvalidOperationException($"{t.From.Name} cannot pay {t.AmountCents}");
        t.From.BalanceCents -= t.AmountCents;
        t.To.BalanceCents += t.AmountCents;
    }
}
