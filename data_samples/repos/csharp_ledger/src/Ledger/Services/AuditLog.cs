using System.Collections.Generic;
using T = Ledger.Models.Transfer;

namespace Ledger.Services;

/// <summary>Remembers every transfer it is shown.</summary>
public class AuditLog
{
    private readonly List<T> _entries = new();

    public void Record(T entry) => _entries.Add(entry);

    public int Count => _entries.Count;
}
