package com.shop.model;

import java.util.ArrayList;
import java.util.List;

/** The lines of one purchase; an order knows its customer and the customer its orders. */
public class Order {
    private final Customer customer;
    private final List<Item> lines = new ArrayList<>();

    public Order(Customer customer) {
        this.customer = customer;
        customer.place(this);
    }

    public void add(Item line) { lines.add(line); }

    public List<Item> getLines() { return lines; }

    public Customer getCustomer() { return customer; }
}
