package com.shop.model;

/** A product with a name and a unit price in cents. */
public final class Item {
    private final String name;
    private final long priceCents;

    public Item(String name, long priceCents) {
        this.name = name;
        this.priceCents = priceCents;
    }

    public String getName() { return name; }

    public long getPriceCents() { return priceCents; }
}
